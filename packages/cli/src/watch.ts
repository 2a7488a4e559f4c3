import { type AnyJobView, type BatchView, isSettled, type JobsClient, type JobView } from '@serverless-jobs/client';
import { CliError, EXIT } from './exit.js';
import { countsLine, describeJob, type Output, taskTable, write, writeLine } from './output.js';

export interface WatchOptions {
  /** Seconds between reads: the long poll's wait, so a job that settles sooner answers at once. */
  interval: number;
  timeoutMs?: number;
  signal: AbortSignal;
}

/** Draws a job as it changes; `done` leaves its final state on the screen or in the stream. */
interface Renderer {
  update(view: AnyJobView): void;
  done(view: AnyJobView): Promise<void>;
  /** Ctrl-C or an error: let go of the terminal, leaving what was drawn. */
  stop(): void;
}

/** JSON Lines: each view that differs from the one before, the final one last. */
function jsonRenderer(): Renderer {
  let last = '';
  const update = (view: AnyJobView) => {
    const line = JSON.stringify(view);
    if (line !== last) writeLine(view);
    last = line;
  };
  return { update, done: async (view) => update(view), stop: () => {} };
}

const stateLine = (view: AnyJobView) => {
  const chunks =
    view.kind === 'batch'
      ? `, chunks ${(view as BatchView).batch.chunks.done}/${(view as BatchView).batch.chunks.total}`
      : '';
  return `${view.status} ${countsLine(view)}${chunks}`;
};

/** Piped: a timestamped line each time the state changes, then the job as `get` shows it. */
function plainRenderer(out: Output): Renderer {
  let last = '';
  const update = (view: AnyJobView) => {
    const line = stateLine(view);
    if (line !== last) write(`${new Date().toISOString()} ${view.id} ${line}`);
    last = line;
  };
  return {
    update,
    async done(view) {
      update(view);
      write(await describeJob(view, out));
    },
    stop() {},
  };
}

/** A terminal, a job of tasks: its task table redrawn in place (log-update) as it changes. */
async function taskRenderer(out: Output): Promise<Renderer> {
  const [{ createLogUpdate }] = await Promise.all([import('log-update'), import('cli-table3')]);
  const draw = createLogUpdate(process.stdout);
  let pending = Promise.resolve();
  const redraw = (view: JobView) => {
    pending = pending.then(async () => draw(`job ${view.id}  ${stateLine(view)}\n${await taskTable(view, out)}`));
  };
  return {
    update: (view) => redraw(view as JobView),
    async done(view) {
      await pending;
      // The final state is written, not drawn: it stays whatever the terminal's size (log-update draws nothing at 0 rows).
      draw.clear();
      draw.done();
      write(await describeJob(view, out));
    },
    stop: () => draw.done(),
  };
}

/** A terminal, a batch: a progress bar of its rows (cli-progress), then the batch as `get` shows it. */
async function batchRenderer(out: Output): Promise<Renderer> {
  const { default: progress } = await import('cli-progress');
  const bar = new progress.SingleBar(
    {
      format: '{bar} {percentage}% | {value}/{total} rows | {failed} failed | chunks {chunks} | {status}',
      stream: process.stdout,
      hideCursor: true,
      emptyOnZero: true,
      etaBuffer: 20,
    },
    progress.Presets.shades_classic,
  );
  let started = false;
  const payload = (view: BatchView) => ({
    failed: view.counts.failed,
    chunks: `${view.batch.chunks.done}/${view.batch.chunks.total}`,
    status: view.status,
  });
  const update = (view: AnyJobView) => {
    const batch = view as BatchView;
    const done = batch.counts.total - batch.counts.pending;
    if (!started) bar.start(batch.counts.total, done, payload(batch));
    else {
      bar.setTotal(batch.counts.total);
      bar.update(done, payload(batch));
    }
    started = true;
  };
  return {
    update,
    async done(view) {
      update(view);
      bar.stop();
      write(await describeJob(view, out));
    },
    stop: () => bar.stop(),
  };
}

function rendererFor(view: AnyJobView, out: Output): Renderer | Promise<Renderer> {
  if (out.json) return jsonRenderer();
  if (!out.tty) return plainRenderer(out);
  return view.kind === 'batch' ? batchRenderer(out) : taskRenderer(out);
}

/** The exit code a job's end means: 0 SUCCEEDED, 10 FAILED, 11 ABORTED. */
export function exitCodeOfJob(view: AnyJobView): number {
  if (view.status === 'FAILED') return EXIT.JOB_FAILED;
  if (view.status === 'ABORTED') return EXIT.JOB_ABORTED;
  return EXIT.OK;
}

/**
 * Reads the job until it has settled (a batch: its outputs assembled too), drawing each change.
 * Plain reads paced by the long poll rather than `client.wait`: a long poll alone answers only
 * at the end, and a progress bar needs the states between.
 */
export async function watch(
  client: JobsClient,
  id: string,
  out: Output,
  options: WatchOptions,
  first?: AnyJobView,
): Promise<AnyJobView> {
  const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
  let view = first ?? (await client.get(id, { signal: options.signal }));
  const renderer = await rendererFor(view, out);
  try {
    while (!isSettled(view)) {
      renderer.update(view);
      const left = Math.floor((deadline - Date.now()) / 1000);
      if (left <= 0) {
        throw new CliError('TIMEOUT', `job ${id} has not settled in time (${view.status})`, EXIT.TIMEOUT);
      }
      view = await client.get(id, { wait: Math.min(options.interval, left), signal: options.signal });
    }
  } catch (error) {
    renderer.stop();
    if (options.signal.aborted) {
      throw new CliError('INTERRUPTED', `stopped watching; job ${id} goes on (jobs watch ${id})`, EXIT.INTERRUPTED);
    }
    throw error;
  }
  await renderer.done(view);
  return view;
}
