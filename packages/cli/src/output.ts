import type { AnyJobView, BatchView, JobSummary, JobView, TaskSummary } from '@serverless-jobs/client';

/**
 * How a command writes: JSON for scripts (`--json`), tables on a terminal, tab-separated lines
 * when piped (one record a line, for cut and awk). Nothing but data goes to stdout.
 */
export interface Output {
  json: boolean;
  /** stdout is a terminal: tables and live progress. */
  tty: boolean;
  /** Colour on a terminal unless NO_COLOR is set. */
  color: boolean;
}

export function outputOf(json: boolean, stream: NodeJS.WriteStream = process.stdout): Output {
  const tty = stream.isTTY === true;
  return { json, tty, color: tty && !process.env.NO_COLOR };
}

export const write = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
/** One JSON document: a reply as the API answered it. */
export const writeJson = (value: unknown) => write(JSON.stringify(value, null, 2));
/** One line of a JSON Lines stream. */
export const writeLine = (value: unknown) => write(JSON.stringify(value));

type Cell = string | number | null | undefined;

/** cli-table3 without the rules between rows: one line a record. */
const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

/** Rows as a table on a terminal (cli-table3, loaded only then), else as tab-separated lines without a header. */
export async function table(out: Output, head: string[], rows: Cell[][]): Promise<string> {
  const cells = rows.map((row) => row.map((cell) => (cell === null || cell === undefined ? '' : String(cell))));
  if (!out.tty) return cells.map((row) => row.join('\t')).join('\n');
  const { default: Table } = await import('cli-table3');
  const rendered = new Table({ head, chars: COMPACT, style: { head: out.color ? ['bold'] : [], border: [] } });
  rendered.push(...cells);
  return rendered.toString();
}

/** Label and value pairs: a two-column table on a terminal, `label: value` lines when piped. */
export async function fields(out: Output, pairs: [string, Cell][]): Promise<string> {
  const shown = pairs.filter(([, value]) => value !== undefined && value !== null && value !== '');
  if (!out.tty) return shown.map(([label, value]) => `${label}: ${value}`).join('\n');
  const { default: Table } = await import('cli-table3');
  const rendered = new Table({ chars: COMPACT, style: { head: [], border: [] } });
  for (const [label, value] of shown) rendered.push({ [label]: String(value) });
  return rendered.toString();
}

const percent = (progress: number) => `${Math.round(progress * 100)}%`;

/** `3/5 done (1 failed)`, the counts a user reads first. */
export function countsLine(view: Pick<AnyJobView, 'counts' | 'kind'>): string {
  const { total, succeeded, failed, aborted } = view.counts;
  const unit = view.kind === 'batch' ? 'rows' : total === 1 ? 'task' : 'tasks';
  const extra = [failed ? `${failed} failed` : '', aborted ? `${aborted} aborted` : ''].filter(Boolean).join(', ');
  return `${succeeded + failed + aborted}/${total} ${unit} done${extra ? ` (${extra})` : ''}`;
}

function duration(from: string | null, to: string | null): string | undefined {
  if (!from) return undefined;
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** A value in one cell: JSON, cut short on a terminal where the cell is narrow. */
export function short(value: unknown, out: Output, width = 60): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return out.tty && text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

const errorText = (error: { code?: string | null; message: string; kind?: string } | null | undefined) =>
  error ? `${error.code ?? error.kind ?? 'error'}: ${error.message}` : '';

/** The tasks of a job, one row each: what ran, how it went, what it answered. */
export function taskTable(view: JobView, out: Output): Promise<string> {
  return table(
    out,
    ['#', 'name', 'processor', 'status', 'attempts', 'result / error'],
    view.tasks.map((task) => [
      task.index,
      task.name,
      task.processor,
      task.status,
      task.attempts,
      task.error ? short(errorText(task.error), out) : short(task.result, out),
    ]),
  );
}

export function outputsTable(view: BatchView, out: Output): Promise<string> {
  return table(
    out,
    ['output', 'lines', 'bytes'],
    Object.entries(view.batch.outputs).map(([name, file]) => [name, file.lines, file.bytes]),
  );
}

/** A job as `get`, `abort` and the end of `watch` show it. */
export async function describeJob(view: AnyJobView, out: Output): Promise<string> {
  const batch = view.kind === 'batch' ? (view as BatchView) : undefined;
  const error = batch?.error ?? null;
  const head = await fields(out, [
    ['id', view.id],
    ['type', view.type],
    ['name', view.name],
    [
      'kind',
      batch
        ? `batch of ${batch.batch.processor}, chunks of ${batch.batch.chunkSize}`
        : `tasks, ${(view as JobView).strategy}`,
    ],
    ['status', `${view.status} ${percent(view.progress)}, ${countsLine(view)}`],
    ['error', error ? errorText(error) : undefined],
    ['chunks', batch ? `${batch.batch.chunks.done}/${batch.batch.chunks.total}` : undefined],
    ['meta', Object.keys(view.meta).length ? JSON.stringify(view.meta) : undefined],
    ['created', view.createdAt],
    ['started', view.startedAt],
    [
      'ended',
      view.endedAt ? `${view.endedAt} (${duration(view.startedAt ?? view.createdAt, view.endedAt)})` : undefined,
    ],
  ]);
  const parts = [head];
  if (!batch) parts.push(await taskTable(view as JobView, out));
  else if (batch.batch.finalized) parts.push(await outputsTable(batch, out));
  return parts.join('\n');
}

export function jobsTable(jobs: JobSummary[], out: Output): Promise<string> {
  return table(
    out,
    ['id', 'type', 'kind', 'status', 'progress', 'created'],
    jobs.map((job) => [job.id, job.type, job.kind, job.status, percent(job.progress), job.createdAt]),
  );
}

export function tasksTable(tasks: TaskSummary[], out: Output): Promise<string> {
  return table(
    out,
    ['task', 'job', 'job type', 'processor', 'status', 'attempts', 'error'],
    tasks.map((task) => [
      task.id,
      task.jobId,
      task.jobType,
      task.processor,
      task.status,
      task.attempts,
      short(errorText(task.error), out, 40),
    ]),
  );
}
