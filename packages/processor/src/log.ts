import { MAX_LOG_ENTRIES } from '../../../shared/core/processor-replies.js';
import { type JsonValue, jsonProblem } from './json.js';

export type LogLevel = 'info' | 'warn' | 'error';
export type LogData = Record<string, JsonValue>;
export interface LogEntry {
  level: LogLevel;
  message: string;
  data?: LogData;
}

/**
 * Adds an entry to the job's update log, sent with the reply (`GET /v1/jobs/{id}/events`).
 * `log(message, data?)` is `log.info`.
 */
export interface Log {
  (message: string, data?: LogData): void;
  info(message: string, data?: LogData): void;
  warn(message: string, data?: LogData): void;
  error(message: string, data?: LogData): void;
}

const MAX_MESSAGE = 1000;
const MAX_DATA_BYTES = 2048;

/**
 * A task's log. Logging never fails the work it describes, so what the contract would refuse is
 * cut to fit instead (and says so): a long message is truncated, data too large or not JSON is
 * replaced by a note, and past the contract's 20 entries the last one counts what was dropped.
 */
export function collectLog(): { log: Log; entries(): LogEntry[] } {
  const entries: LogEntry[] = [];
  let overflow = 0;
  const add = (level: LogLevel, message: string, data?: LogData) => {
    if (entries.length === MAX_LOG_ENTRIES) {
      overflow++;
      return;
    }
    const entry: LogEntry = { level, message: String(message).slice(0, MAX_MESSAGE) };
    if (data !== undefined) entry.data = fit(data);
    entries.push(entry);
  };
  const log = ((message: string, data?: LogData) => add('info', message, data)) as Log;
  log.info = (message, data) => add('info', message, data);
  log.warn = (message, data) => add('warn', message, data);
  log.error = (message, data) => add('error', message, data);
  return {
    log,
    entries: () =>
      overflow === 0
        ? entries
        : [
            ...entries.slice(0, MAX_LOG_ENTRIES - 1),
            {
              level: 'warn',
              message: `${overflow + 1} more log entries dropped (at most ${MAX_LOG_ENTRIES} per reply)`,
            },
          ],
  };
}

function fit(data: LogData): LogData {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { dropped: 'data must be an object' };
  const problem = jsonProblem(data, 'data');
  if (problem) return { dropped: problem };
  const bytes = Buffer.byteLength(JSON.stringify(data));
  if (bytes > MAX_DATA_BYTES) return { dropped: `data is ${bytes} bytes serialized; at most ${MAX_DATA_BYTES}` };
  return data;
}
