import { createWriteStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  type AnyJobView,
  type BatchView,
  type FindQuery,
  JobsClient,
  type SubmitBatchBody,
  type SubmitTasksBody,
  type TasksQuery,
} from '@serverless-jobs/client';
import { connect, type Settings } from './config.js';
import { CliError, EXIT, UsageError } from './exit.js';
import { describeJob, jobsTable, type Output, outputOf, tasksTable, write, writeJson, writeLine } from './output.js';
import { exitCodeOfJob, watch } from './watch.js';

/** Options every command takes (program-level in commander). */
export interface GlobalOptions extends Settings {
  profile?: string;
  json?: boolean;
}

export interface Context {
  client: JobsClient;
  endpoint: string;
  out: Output;
  /** Aborted by Ctrl-C while a command watches or follows. */
  signal: AbortSignal;
}

export function contextOf(options: GlobalOptions, signal: AbortSignal): Context {
  const { endpoint, auth } = connect(options);
  return { client: new JobsClient({ endpoint, auth }), endpoint, out: outputOf(options.json === true), signal };
}

export interface WatchFlags {
  interval: number;
  timeout?: number;
}

const watchOptions = (ctx: Context, flags: WatchFlags) => ({
  interval: flags.interval,
  signal: ctx.signal,
  ...(flags.timeout !== undefined ? { timeoutMs: flags.timeout * 1000 } : {}),
});

async function show(ctx: Context, view: AnyJobView): Promise<void> {
  if (ctx.out.json) writeJson(view);
  else write(await describeJob(view, ctx.out));
}

async function readBody(file: string): Promise<unknown> {
  let text: string;
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file === '-' ? 'stdin' : file} is not JSON: ${(error as Error).message}`);
  }
}

export interface SubmitFlags extends WatchFlags {
  type?: string;
  processor?: string;
  input?: unknown;
  name?: string;
  meta?: Record<string, string>;
  strategy?: 'sequential' | 'concurrent';
  idempotencyKey?: string;
  watch?: boolean;
}

/** The body: a file (`-` for stdin), stdin when it is piped, or one task from the flags. */
async function submission(file: string | undefined, flags: SubmitFlags): Promise<SubmitTasksBody | SubmitBatchBody> {
  const fromFlags = flags.type !== undefined || flags.processor !== undefined || flags.input !== undefined;
  if (file !== undefined && fromFlags) {
    throw new UsageError('give the body as a file or as --type/--processor/--input, not both');
  }
  if (fromFlags) {
    if (!flags.type || !flags.processor) throw new UsageError('a job from flags needs --type and --processor');
    return {
      type: flags.type,
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...(flags.meta ? { meta: flags.meta } : {}),
      ...(flags.strategy ? { strategy: flags.strategy } : {}),
      tasks: [{ processor: flags.processor, ...(flags.input !== undefined ? { input: flags.input } : {}) }],
    } as SubmitTasksBody;
  }
  if (file === undefined && process.stdin.isTTY) {
    throw new UsageError('no body: give a JSON file, - for stdin, or --type T --processor P [--input JSON]');
  }
  const body = await readBody(file ?? '-');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new UsageError('the body must be a JSON object ({"type": …, "tasks": […]} or {"type": …, "batch": {…}})');
  }
  return body as SubmitTasksBody;
}

export async function submit(ctx: Context, file: string | undefined, flags: SubmitFlags): Promise<number> {
  const body = await submission(file, flags);
  const options = flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {};
  const job =
    'batch' in body
      ? await ctx.client.submitBatch(body as SubmitBatchBody, options)
      : await ctx.client.submit(body as SubmitTasksBody, options);
  if (!flags.watch) {
    await show(ctx, job);
    return EXIT.OK;
  }
  if (ctx.out.json) writeLine(job);
  else if (!ctx.out.tty) write(`submitted ${job.id}`);
  return exitCodeOfJob(await watch(ctx.client, job.id, ctx.out, watchOptions(ctx, flags)));
}

export async function get(ctx: Context, id: string, flags: { wait?: number }): Promise<number> {
  await show(
    ctx,
    await ctx.client.get(id, { signal: ctx.signal, ...(flags.wait !== undefined ? { wait: flags.wait } : {}) }),
  );
  return EXIT.OK;
}

export async function watchJob(ctx: Context, id: string, flags: WatchFlags): Promise<number> {
  return exitCodeOfJob(await watch(ctx.client, id, ctx.out, watchOptions(ctx, flags)));
}

export async function abort(ctx: Context, id: string): Promise<number> {
  await show(ctx, await ctx.client.abort(id, { signal: ctx.signal }));
  return EXIT.OK;
}

/** Reads an iterator to `limit` items; JSON Lines as they come, or one table at the end. */
async function list<T>(
  ctx: Context,
  items: AsyncIterable<T>,
  limit: number,
  render: (items: T[], out: Output) => Promise<string>,
): Promise<number> {
  const kept: T[] = [];
  let count = 0;
  for await (const item of items) {
    if (ctx.out.json) writeLine(item);
    else kept.push(item);
    if (++count >= limit) break;
  }
  if (!ctx.out.json && (kept.length || ctx.out.tty)) write(kept.length ? await render(kept, ctx.out) : '(none)');
  return EXIT.OK;
}

export interface ListFlags {
  limit: number;
  order?: 'asc' | 'desc';
}

/** A page never larger than what is asked for, nor than the API's 100. */
const pageSize = (limit: number) => Math.min(limit, 100);

export function ls(
  ctx: Context,
  flags: ListFlags & {
    type?: string;
    status?: string;
    createdAfter?: string;
    createdBefore?: string;
    meta?: Record<string, string>;
  },
): Promise<number> {
  const query: Record<string, unknown> = {
    type: flags.type,
    status: flags.status,
    createdAfter: flags.createdAfter,
    createdBefore: flags.createdBefore,
    order: flags.order,
    limit: pageSize(flags.limit),
  };
  for (const [key, value] of Object.entries(flags.meta ?? {})) query[`meta.${key}`] = value;
  const defined = Object.fromEntries(Object.entries(query).filter(([, value]) => value !== undefined)) as FindQuery;
  return list(ctx, ctx.client.find(defined, { signal: ctx.signal }), flags.limit, jobsTable);
}

export function tasks(
  ctx: Context,
  flags: ListFlags & { processor?: string; status?: string; jobType?: string },
): Promise<number> {
  const query = Object.fromEntries(
    Object.entries({
      processor: flags.processor,
      status: flags.status,
      jobType: flags.jobType,
      order: flags.order,
      limit: pageSize(flags.limit),
    }).filter(([, value]) => value !== undefined),
  ) as TasksQuery;
  return list(ctx, ctx.client.tasks(query, { signal: ctx.signal }), flags.limit, tasksTable);
}

export async function events(ctx: Context, id: string, flags: { follow?: boolean; interval: number }): Promise<number> {
  try {
    for await (const event of ctx.client.events(id, {
      follow: flags.follow === true,
      pollSeconds: flags.interval,
      signal: ctx.signal,
    })) {
      if (ctx.out.json) writeLine(event);
      else write(`${event.at}  ${event.level.padEnd(5)}  ${event.type.padEnd(18)}  ${event.message}`);
    }
  } catch (error) {
    if (ctx.signal.aborted) return EXIT.INTERRUPTED;
    throw error;
  }
  return EXIT.OK;
}

/** A batch's row outcomes: JSON Lines whatever the flags, the format `results` downloads in too. */
export async function rows(ctx: Context, id: string, flags: { status?: string }): Promise<number> {
  const status = flags.status as 'PENDING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED' | undefined;
  for await (const row of ctx.client.rows(id, { ...(status ? { status } : {}), limit: 1000, signal: ctx.signal })) {
    writeLine(row);
  }
  return EXIT.OK;
}

const FORMATS: Record<string, 'csv' | 'jsonl'> = { '.csv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl' };

export interface BatchFlags extends WatchFlags {
  processor: string;
  type: string;
  format?: 'csv' | 'jsonl';
  chunkSize?: number;
  maxFailedRows?: number;
  context?: Record<string, unknown>;
  name?: string;
  meta?: Record<string, string>;
  idempotencyKey?: string;
  watch: boolean;
}

/** A byte bar on a terminal; on a pipe or with --json nothing until the upload is done. */
async function uploadProgress(out: Output, size: number) {
  if (!out.tty || out.json) return { onProgress: undefined, stop: () => {} };
  const { default: progress } = await import('cli-progress');
  const bar = new progress.SingleBar(
    {
      format: 'upload {bar} {percentage}% | {value}/{total} bytes',
      stream: process.stdout,
      hideCursor: true,
      emptyOnZero: true,
    },
    progress.Presets.shades_classic,
  );
  bar.start(size, 0);
  return {
    onProgress: ({ loaded }: { loaded: number }) => bar.update(loaded),
    stop: () => bar.stop(),
  };
}

/** submit (upload: true) → upload the file → release → watch, as one command. */
export async function batch(ctx: Context, file: string, flags: BatchFlags): Promise<number> {
  const format = flags.format ?? FORMATS[extname(file).toLowerCase()];
  if (!format) throw new UsageError(`cannot tell the format of ${file}: name it .csv or .jsonl, or pass --format`);
  const size = (
    await stat(file).catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
    })
  ).size;
  const created = await ctx.client.submitBatch(
    {
      type: flags.type,
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...(flags.meta ? { meta: flags.meta } : {}),
      batch: {
        processor: flags.processor,
        upload: true,
        input: { format },
        ...(flags.chunkSize !== undefined ? { chunkSize: flags.chunkSize } : {}),
        ...(flags.maxFailedRows !== undefined ? { maxFailedRows: flags.maxFailedRows } : {}),
        ...(flags.context !== undefined ? { context: flags.context } : {}),
      },
    },
    flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {},
  );
  if (ctx.out.json) writeLine(created);
  else if (!ctx.out.tty) write(`submitted ${created.id}`);
  const { fileData } = await import('@serverless-jobs/client/node');
  const bar = await uploadProgress(ctx.out, size);
  try {
    await ctx.client.upload(created, await fileData(file), {
      signal: ctx.signal,
      ...(bar.onProgress ? { onProgress: bar.onProgress } : {}),
    });
  } finally {
    bar.stop();
  }
  const released = await ctx.client.release(created.id, { signal: ctx.signal });
  if (ctx.out.json) writeLine(released);
  else if (!ctx.out.tty) write(`uploaded ${size} bytes, released ${released.id}`);
  if (!flags.watch) {
    if (!ctx.out.json) write(released.id);
    return EXIT.OK;
  }
  return exitCodeOfJob(await watch(ctx.client, created.id, ctx.out, watchOptions(ctx, flags), released));
}

/** An output file of a finished batch, to stdout or to a file (with a byte bar on a terminal). */
export async function download(
  ctx: Context,
  id: string,
  name: string | undefined,
  flags: { out?: string },
): Promise<number> {
  const job = await ctx.client.get(id, { signal: ctx.signal });
  if (job.kind !== 'batch')
    throw new CliError('INVALID_STATE', `job ${id} is a job of tasks: only a batch has output files`, EXIT.REFUSED);
  const batch = job as BatchView;
  if (!batch.batch.finalized) {
    throw new CliError(
      'INVALID_STATE',
      `batch ${id} has no outputs yet (${batch.status}): jobs watch ${id}`,
      EXIT.REFUSED,
    );
  }
  const wanted = name ?? 'results';
  const output = batch.batch.outputs[wanted];
  if (!output) {
    const names = Object.keys(batch.batch.outputs).join(', ');
    throw new CliError('NOT_FOUND', `batch ${id} has no output '${wanted}' (outputs: ${names})`, EXIT.NOT_FOUND);
  }
  const body = Readable.fromWeb((await ctx.client.download(output, { signal: ctx.signal })) as WebReadableStream);
  if (!flags.out) {
    await pipeline(body, process.stdout, { end: false });
    return EXIT.OK;
  }
  const stderr = outputOf(ctx.out.json, process.stderr);
  let bar: { update(n: number): void; stop(): void } | undefined;
  if (stderr.tty && !ctx.out.json) {
    const { default: progress } = await import('cli-progress');
    const single = new progress.SingleBar(
      { format: `${wanted} {bar} {percentage}% | {value}/{total} bytes`, hideCursor: true, emptyOnZero: true },
      progress.Presets.shades_classic,
    );
    single.start(output.bytes, 0);
    bar = single;
  }
  let loaded = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      loaded += chunk.length;
      bar?.update(loaded);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(body, count, createWriteStream(flags.out));
  } finally {
    bar?.stop();
  }
  if (ctx.out.json) writeJson({ id, output: wanted, file: flags.out, bytes: loaded, lines: output.lines });
  else process.stderr.write(`${flags.out}: ${loaded} bytes, ${output.lines} lines of ${wanted}\n`);
  return EXIT.OK;
}
