/**
 * The batch files' formats, apart from where the bytes are kept: reading JSON Lines and CSV inputs
 * from a body's chunks, and the lines the API and the assembly write.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import { InputUnreadableError } from '../errors.js';
import type { InputRow, RowCursor } from '../ports.js';
import type { BatchPart, RowOutcome } from './model.js';

/** How much of an input one row may take; past it the row fails as `BAD_ROW` and reading goes on. */
export interface ReadLimits {
  /** Bytes of a line, or of a CSV record over several lines. A longer line is skipped to its end, unread. */
  maxLineBytes: number;
  /** Lines a quoted CSV field may run over. */
  maxQuotedLines: number;
}

export const DEFAULT_READ_LIMITS: ReadLimits = { maxLineBytes: 1024 * 1024, maxQuotedLines: 100 };

/**
 * A file's bytes from `byte` on, as the chunks of a body. Lazy: nothing is fetched before the
 * first chunk is asked for, and a reader that stops early ends it (`return`).
 */
export type OpenPart = (part: BatchPart, byte: number) => AsyncIterable<Uint8Array>;

/** Where a file's reading starts: a byte and that byte's line of the file. */
type Start = { byte: number; fileLine: number };

/**
 * A line of a file, without its line break: its text (none when longer than the limit), where it
 * starts, and its length in bytes.
 */
type Line = { text: string; byte: number; fileLine: number; bytes: number; tooLong?: true };
type Row = Omit<InputRow, 'at'> & { at: Omit<RowCursor, 'part'> };

/** The rows of a batch's parts in order, from `from` (a row's place, so reading can resume there). */
export async function* readRows(
  parts: readonly BatchPart[],
  open: OpenPart,
  limits: ReadLimits,
  from?: RowCursor,
): AsyncIterable<InputRow> {
  for (let index = from?.part ?? 0; index < parts.length; index++) {
    const part = parts[index]!;
    const start = from?.part === index ? { byte: from.byte, fileLine: from.fileLine } : { byte: 0, fileLine: 1 };
    const body = (at: Start, maxLineBytes = limits.maxLineBytes) => lines(open(part, at.byte), at, maxLineBytes);
    let rows: AsyncIterable<Row>;
    if (part.kind === 'rows') {
      // Rows the API took (and stored) are never refused later: the request's size bounded them.
      const ours = { ...limits, maxLineBytes: Number.POSITIVE_INFINITY };
      rows = jsonLines(body(start, ours.maxLineBytes), ours);
    } else if (part.format === 'csv') {
      // Resuming past the header: it is read on its own first (the reader stops right after it).
      const header = start.byte > 0 ? await csvHeaderOf(body({ byte: 0, fileLine: 1 }), limits, part) : undefined;
      if (start.byte > 0 && header === undefined) continue;
      rows = csvRows(body(start), limits, part, header);
    } else {
      rows = jsonLines(body(start), limits);
    }
    for await (const row of rows) yield { ...row, at: { part: index, ...row.at } };
  }
}

/** A Node `Buffer` over the same bytes (no copy), for its fast UTF-8 decoding. */
const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Lines of a body's chunks read from `start`, each with the byte and line of the file it starts
 * at (so reading can resume there); `\r\n` and a leading byte-order mark are handled. A line's
 * pieces are kept as they arrive and joined once at its end, so reading is linear in its length;
 * past `maxLineBytes` they are dropped and the rest of the line is only counted.
 */
async function* lines(body: AsyncIterable<Uint8Array>, start: Start, maxLineBytes: number): AsyncIterable<Line> {
  let byte = start.byte;
  let fileLine = start.fileLine;
  let pieces: Uint8Array[] = [];
  let length = 0;
  let tooLong = false;
  const end = (): Line => {
    let text = '';
    let long = tooLong;
    if (!long) {
      let whole = asBuffer(pieces.length === 1 ? (pieces[0] as Uint8Array) : Buffer.concat(pieces, length));
      if (whole.length > 0 && whole[whole.length - 1] === 13) whole = whole.subarray(0, whole.length - 1);
      long = whole.length > maxLineBytes;
      if (!long) text = whole.toString('utf8');
      if (byte === 0) text = text.replace(/^\uFEFF/, '');
    }
    const line: Line = { text, byte, fileLine, bytes: length, ...(long ? { tooLong: true as const } : {}) };
    byte += length + 1;
    fileLine++;
    pieces = [];
    length = 0;
    tooLong = false;
    return line;
  };
  // Leaving this loop early (a reader that stops: a plan slice, the CSV header) ends the body.
  for await (const chunk of body) {
    for (let from = 0; ; ) {
      const nl = chunk.indexOf(10, from);
      const stop = nl === -1 ? chunk.length : nl;
      length += stop - from;
      // One byte over the limit may be the `\r` of a `\r\n`: decided at the line's end.
      if (!tooLong && length > maxLineBytes + 1) {
        tooLong = true;
        pieces = [];
      } else if (!tooLong && stop > from) {
        pieces.push(chunk.subarray(from, stop));
      }
      if (nl === -1) break;
      yield end();
      from = nl + 1;
    }
  }
  if (length > 0) yield end();
}

/** JSON Lines: one JSON value per line; blank lines are not rows; a line that is not JSON fails alone. */
async function* jsonLines(lines: AsyncIterable<Line>, limits: ReadLimits): AsyncIterable<Row> {
  for await (const line of lines) {
    const at = { byte: line.byte, fileLine: line.fileLine };
    if (line.tooLong) {
      yield { invalid: `the line is longer than ${limits.maxLineBytes} bytes`, at };
      continue;
    }
    if (line.text.trim() === '') continue;
    try {
      yield { input: JSON.parse(line.text), at };
    } catch (error) {
      yield { invalid: `not JSON: ${(error as Error).message.slice(0, 200)}`, at };
    }
  }
}

/** A CSV record: its fields, or why it cannot be read; and where it starts. */
type CsvRecord = { at: Start } & ({ fields: string[] } | { problem: string });

/**
 * CSV records, each cut out by its quotes (a quoted field may hold line breaks) and parsed on its
 * own by csv-parse. A quoted field is bounded: it may run over `maxQuotedLines` lines and the
 * record `maxLineBytes` bytes. A record of several lines that fails (a quote never closed, past a
 * bound, or closed by another stray quote so the record does not parse) may be a stray quote
 * rather than a field: only the line it started on fails, and the lines it ran over are read again
 * as records of their own, so no row vanishes into it. Reading is the same from any record's start
 * (a resumed slice reads what a whole read does). `shape.width`: the header's, once read.
 */
async function* csvRecords(
  source: AsyncIterable<Line>,
  limits: ReadLimits,
  shape: { width?: number },
): AsyncIterable<CsvRecord> {
  const lines = source[Symbol.asyncIterator]();
  /** Lines a failed record ran over, to read again. */
  const again: Line[] = [];
  const nextLine = async (): Promise<Line | undefined> => {
    const line = again.shift();
    if (line) return line;
    const next = await lines.next();
    return next.done ? undefined : next.value;
  };
  try {
    for (let first = await nextLine(); first; first = await nextLine()) {
      if (!first.tooLong && first.text.trim() === '') continue;
      const at = { byte: first.byte, fileLine: first.fileLine };
      const taken = [first];
      let problem: string | undefined;
      if (first.tooLong) {
        problem = `the line is longer than ${limits.maxLineBytes} bytes`;
      } else {
        let bytes = first.bytes;
        for (let quoted = endsQuoted(first.text, false); quoted; ) {
          if (taken.length >= limits.maxQuotedLines) {
            problem = `a quoted field is not closed within ${limits.maxQuotedLines} lines`;
            break;
          }
          const line = await nextLine();
          if (!line) {
            problem = 'a quoted field is never closed';
            break;
          }
          taken.push(line);
          bytes += 1 + line.bytes;
          if (line.tooLong || bytes > limits.maxLineBytes) {
            problem = `a quoted field runs past ${limits.maxLineBytes} bytes`;
            break;
          }
          quoted = endsQuoted(line.text, true);
        }
      }
      if (problem === undefined) {
        const fields = splitRecord(taken.length === 1 ? first.text : taken.map((line) => line.text).join('\n'));
        if (typeof fields === 'string') problem = fields;
        else if (shape.width !== undefined && fields.length !== shape.width)
          problem = `${fields.length} field(s); the header has ${shape.width}`;
        else {
          yield { fields, at };
          continue;
        }
      }
      if (taken.length > 1) {
        again.unshift(...taken.slice(1));
        problem = `${problem} (a quoted field opened on this line ran over ${taken.length} lines: this line fails alone and the lines after it are read as rows)`;
      }
      yield { problem, at };
    }
  } finally {
    await lines.return?.();
  }
}

/**
 * Whether a CSV line ends inside a quoted field, given whether it starts inside one. A quote opens
 * a field only at the field's start (RFC 4180); elsewhere it is a bad quote csv-parse reports,
 * which must not make the next lines part of this record.
 */
function endsQuoted(text: string, quoted: boolean): boolean {
  let inside = quoted;
  for (let q = text.indexOf('"'); q !== -1; q = text.indexOf('"', q + 1)) {
    if (inside) {
      if (text.charCodeAt(q + 1) === 34) q++;
      else inside = false;
    } else if (q === 0 || text.charCodeAt(q - 1) === 44) {
      inside = true;
    }
  }
  return inside;
}

/**
 * A CSV file's header (its first record): field names. One that cannot be read, or names a field
 * twice, fails the batch: no row of the file could be read as meant. Undefined: the file is empty.
 */
async function csvHeader(records: AsyncIterator<CsvRecord>, file: { bucket: string; key: string }) {
  const first = await records.next();
  if (first.done) return undefined;
  const header = first.value;
  const bad = (why: string) =>
    new InputUnreadableError(
      file.bucket,
      file.key,
      'BAD_HEADER',
      `CSV header (file line ${header.at.fileLine}): ${why}`,
    );
  if ('problem' in header) throw bad(header.problem);
  const seen = new Set<string>();
  for (const name of header.fields) {
    if (seen.has(name)) throw bad(`it names '${name.slice(0, 100)}' twice`);
    seen.add(name);
  }
  return header.fields;
}

/** A CSV file's header read from its first lines, the rest left unread. */
async function csvHeaderOf(lines: AsyncIterable<Line>, limits: ReadLimits, file: { bucket: string; key: string }) {
  const records = csvRecords(lines, limits, {})[Symbol.asyncIterator]();
  try {
    return await csvHeader(records, file);
  } finally {
    await records.return?.(undefined);
  }
}

/**
 * CSV with a header row (field names): each record is a row, and a ragged or badly quoted record
 * fails alone, with its reason. `header`: already read (a resumed read).
 */
async function* csvRows(
  lines: AsyncIterable<Line>,
  limits: ReadLimits,
  file: { bucket: string; key: string },
  header?: string[],
): AsyncIterable<Row> {
  const shape: { width?: number } = {};
  const records = csvRecords(lines, limits, shape)[Symbol.asyncIterator]();
  try {
    const names = header ?? (await csvHeader(records, file));
    if (names === undefined) return;
    shape.width = names.length;
    for (let next = await records.next(); !next.done; next = await records.next()) {
      const record = next.value;
      if ('problem' in record) {
        yield { invalid: record.problem, at: record.at };
        continue;
      }
      const row: Record<string, string> = {};
      names.forEach((name, i) => {
        row[name] = record.fields[i] as string;
      });
      yield { input: row, at: record.at };
    }
  } finally {
    await records.return?.(undefined);
  }
}

/**
 * The fields of one record, or why it cannot be read. Records without any quote are split on
 * commas directly (RFC 4180 gives them no other reading), which keeps 1M rows fast.
 */
function splitRecord(text: string): string[] | string {
  if (!text.includes('"')) return text.split(',');
  try {
    const records = parseCsv(text, { relax_column_count: true }) as string[][];
    if (records.length !== 1) return 'not exactly one record';
    return records[0] as string[];
  } catch (error) {
    return (error as Error).message.replace(/\s+/g, ' ').slice(0, 300);
  }
}

/** Rows the API took, as the JSON Lines file it keeps them in (an absent value is `null`: still a row). */
export function rowsText(rows: readonly unknown[]): string {
  return rows.map((row) => `${JSON.stringify(row ?? null)}\n`).join('');
}

/** A chunk's row outcomes, as the JSON Lines file the finalizer reads back. */
export function outcomesText(outcomes: readonly RowOutcome[]): string {
  return outcomes.map((row) => `${JSON.stringify(row)}\n`).join('');
}

export function parseOutcomes(text: string): RowOutcome[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as RowOutcome);
}

/** The files an assembly always writes, even empty; each output name adds one of its own. */
export const ASSEMBLED_FILES = ['results', 'errors'] as const;

/** How an assembled file is named and served: `results` and `errors` are JSON Lines, an output's texts plain text. */
export function assembledFormat(name: string): { extension: string; contentType: string } {
  return (ASSEMBLED_FILES as readonly string[]).includes(name)
    ? { extension: 'jsonl', contentType: 'application/x-ndjson' }
    : { extension: 'txt', contentType: 'text/plain' };
}

/**
 * The lines one row outcome adds to the assembled files, in order: the outcome (without its
 * outputs) to `results`, and to `errors` if it failed; each of its output texts to that output's file.
 */
export function* assembledLines(row: RowOutcome): Iterable<[file: string, line: string]> {
  const { outputs, ...shown } = row;
  const line = `${JSON.stringify(shown)}\n`;
  yield ['results', line];
  if (row.status === 'FAILED') yield ['errors', line];
  for (const [name, text] of Object.entries(outputs ?? {})) yield [name, `${text}\n`];
}
