import { InvalidStateError, WaitTimeoutError } from './errors.js';
import { type Auth, type RetryOptions, sleep, Transport } from './http.js';
import { download, type Uploadable, type UploadData, type UploadOptions, upload } from './transfer.js';
import type {
  AnyJobView,
  AppendReply,
  BatchOutputView,
  BatchView,
  FindQuery,
  JobEvent,
  JobSummary,
  JobView,
  Page,
  Row,
  RowStatus,
  RowView,
  SubmitBatchBody,
  SubmitTasksBody,
  TaskSummary,
  TasksQuery,
} from './types.js';

export interface JobsClientOptions {
  /** The API's base URL, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com` or `http://127.0.0.1:3000`. */
  endpoint: string;
  /** Default `{ type: 'none' }`. */
  auth?: Auth;
  /** A fetch of your own (a proxy agent, instrumentation, a test double). */
  fetch?: typeof globalThis.fetch;
  /** Retries of 5xx, 429 and network failures (default 3, full-jitter backoff from 100 ms up to 2 s). */
  retries?: number | RetryOptions;
  /** Check bodies with the server's schemas before sending them (default true). */
  validate?: boolean;
}

export interface SubmitOptions {
  /** Makes the submission safe to repeat: the same key answers the same job. A random one when absent. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Give up after this long (default: never), with a WaitTimeoutError. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Each view of the job as the long poll returns it, the last one included. */
  onUpdate?: (job: AnyJobView) => void;
}

export interface EventsOptions {
  /** Keep reading until the job has settled, polling every `pollSeconds` (default 2) for new entries. */
  follow?: boolean;
  pollSeconds?: number;
  signal?: AbortSignal;
}

export interface RowsOptions {
  status?: RowStatus;
  /** Rows per page (default 100, at most 1000). */
  limit?: number;
  signal?: AbortSignal;
}

/** The longest wait one long poll takes (`GET /v1/jobs/{id}?wait=`). */
const MAX_POLL_SECONDS = 20;

const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'ABORTED']);

/** Done changing, as the long poll defines it: terminal, and a batch's outputs assembled. */
export function isSettled(job: AnyJobView): boolean {
  return TERMINAL.has(job.status) && (job.kind !== 'batch' || (job as BatchView).batch.finalized);
}

const path = (id: string) => `/v1/jobs/${encodeURIComponent(id)}`;

/** A random idempotency key (crypto.randomUUID: Node ≥ 19, every current browser on https). */
const newKey = () => globalThis.crypto.randomUUID();

/**
 * The jobs API from Node ≥ 20 or a browser. Every method maps to one route of the contract
 * (API.md); refusals are thrown as the JobsApiError subclass of their code.
 */
export class JobsClient {
  private readonly transport: Transport;
  private readonly validate: boolean;
  private validator: Promise<typeof import('./validate.js')> | undefined;

  constructor(options: JobsClientOptions) {
    this.transport = new Transport(options);
    this.validate = options.validate ?? true;
  }

  /** The server's checks, loaded on first use (zod is most of their weight). */
  private async check(kind: 'checkSubmission' | 'checkRows', body: unknown): Promise<void> {
    if (!this.validate) return;
    this.validator ??= import('./validate.js');
    (await this.validator)[kind](body);
  }

  /** `POST /v1/jobs` with tasks. A retry (ours or yours, with the same key) answers the same job. */
  async submit(body: SubmitTasksBody, options: SubmitOptions = {}): Promise<JobView> {
    return this.post(body, options) as Promise<JobView>;
  }

  /** `POST /v1/jobs` with a batch; with `upload: true` its reply carries `batch.upload` for `upload()`. */
  async submitBatch(body: SubmitBatchBody, options: SubmitOptions = {}): Promise<BatchView> {
    return this.post(body, options) as Promise<BatchView>;
  }

  private async post(body: SubmitTasksBody | SubmitBatchBody, options: SubmitOptions): Promise<AnyJobView> {
    await this.check('checkSubmission', body);
    // A key in the body is the job's key already; the header must then say the same or nothing.
    const key = options.idempotencyKey ?? body.idempotencyKey ?? newKey();
    return this.transport.call<AnyJobView>('POST', '/v1/jobs', {
      body,
      headers: { 'idempotency-key': key },
      signal: options.signal,
    });
  }

  /** `GET /v1/jobs/{id}`; with `wait` (seconds, at most 20) the server holds the reply until the job settles. */
  get(id: string, options: { wait?: number; signal?: AbortSignal } = {}): Promise<AnyJobView> {
    const wait = options.wait === undefined ? undefined : Math.min(MAX_POLL_SECONDS, Math.max(0, options.wait));
    return this.transport.call('GET', path(id), { query: { wait }, signal: options.signal });
  }

  /** Long-polls until the job has settled (a batch: ended with its outputs assembled), and answers it. */
  async wait(id: string, options: WaitOptions = {}): Promise<AnyJobView> {
    const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
    // One signal for the polls: the caller's, or the deadline (AbortSignal.any needs Node 20.3).
    const stop = new AbortController();
    const forward = () => stop.abort(options.signal?.reason);
    if (options.signal?.aborted) forward();
    options.signal?.addEventListener('abort', forward, { once: true });
    let timedOut = false;
    const timer = Number.isFinite(deadline)
      ? setTimeout(() => {
          timedOut = true;
          stop.abort();
        }, options.timeoutMs)
      : undefined;
    let last: AnyJobView | undefined;
    try {
      for (;;) {
        const left = deadline - Date.now();
        // A second short of what is left, so the server answers before the deadline does.
        const wait = Math.min(MAX_POLL_SECONDS, Math.max(0, Math.floor(left / 1000) - 1));
        last = await this.get(id, { wait, signal: stop.signal });
        options.onUpdate?.(last);
        if (isSettled(last)) return last;
        // A server that answers early (a wait of 0 near the deadline) must not be asked in a busy loop.
        if (wait === 0) await sleep(Math.min(250, Math.max(0, left)), stop.signal);
      }
    } catch (error) {
      if (timedOut && !options.signal?.aborted) throw new WaitTimeoutError(id, last);
      throw error;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', forward);
    }
  }

  /** `POST /v1/jobs/{id}/abort`: answers the job (asking twice is harmless). */
  abort(id: string, options: { signal?: AbortSignal } = {}): Promise<AnyJobView> {
    return this.transport.call('POST', `${path(id)}/abort`, { signal: options.signal });
  }

  /** `GET /v1/jobs` page after page: every job matching `query`, newest first unless `order: 'asc'`. */
  find(query: FindQuery = {}, options: { signal?: AbortSignal } = {}): AsyncIterable<JobSummary> {
    return this.pages<JobSummary>('/v1/jobs', query, options.signal);
  }

  /** `GET /v1/tasks` page after page. */
  tasks(query: TasksQuery = {}, options: { signal?: AbortSignal } = {}): AsyncIterable<TaskSummary> {
    return this.pages<TaskSummary>('/v1/tasks', query, options.signal);
  }

  /** A batch's row outcomes in line order (`GET /v1/jobs/{id}/rows`), page after page. */
  rows(id: string, options: RowsOptions = {}): AsyncIterable<RowView> {
    const { status, limit, signal } = options;
    return this.pages<RowView>(`${path(id)}/rows`, { status, limit }, signal);
  }

  private async *pages<T>(
    route: string,
    query: Record<string, unknown>,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<T, void, undefined> {
    let cursor = (query.cursor as string | undefined) ?? undefined;
    do {
      const page: Page<T> = await this.transport.call('GET', route, {
        query: { ...(query as Record<string, string | number | undefined>), cursor },
        signal,
      });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /**
   * The job's update log (`GET /v1/jobs/{id}/events`). With `follow`, it goes on until the job has
   * settled: the log is derived from the job, so its last page is read again for entries not yet seen.
   */
  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<JobEvent, void, undefined> {
    const { follow = false, pollSeconds = 2, signal } = options;
    let cursor: string | undefined;
    let seen = new Set<string>();
    let settled = !follow;
    for (;;) {
      const page: Page<JobEvent> = await this.transport.call('GET', `${path(id)}/events`, {
        query: { cursor },
        signal,
      });
      const here = new Set<string>();
      for (const event of page.items) {
        const key = JSON.stringify(event);
        here.add(key);
        if (!seen.has(key)) yield event;
      }
      if (page.nextCursor) {
        cursor = page.nextCursor;
        seen = new Set();
        continue;
      }
      if (settled) return;
      seen = here;
      // The long poll is the pause: it answers at once when the job has settled, else after `pollSeconds`.
      settled = isSettled(await this.get(id, { wait: pollSeconds, signal }));
    }
  }

  /** Uploads a batch's input file through the presigned URL of its submit reply (`batch.upload.url`). */
  upload(job: Uploadable | string, data: UploadData, options: UploadOptions = {}): Promise<void> {
    return upload(this.transport, job, data, options);
  }

  /**
   * `POST /v1/jobs/{id}/rows` onto a held batch. A random idempotency key when none is given, so a
   * retry never appends the rows twice.
   */
  async append(
    id: string,
    rows: Row[],
    options: { idempotencyKey?: string; signal?: AbortSignal } = {},
  ): Promise<AppendReply> {
    const body = { rows, idempotencyKey: options.idempotencyKey ?? newKey() };
    await this.check('checkRows', body);
    return this.transport.call('POST', `${path(id)}/rows`, { body, signal: options.signal });
  }

  /** `POST /v1/jobs/{id}/release`: a held batch's rows are all there; planning starts. */
  async release(id: string, options: { signal?: AbortSignal } = {}): Promise<BatchView> {
    let tries = 0;
    try {
      return await this.transport.call('POST', `${path(id)}/release`, {
        signal: options.signal,
        onTry: (n) => {
          tries = n;
        },
      });
    } catch (error) {
      // Our retry of a release whose reply was lost meets the batch released already: that is its answer.
      if (!(error instanceof InvalidStateError) || tries < 2) throw error;
      const job = await this.get(id, options).catch(() => undefined);
      if (job?.kind === 'batch' && job.status !== 'HELD') return job;
      throw error;
    }
  }

  /** An output file's bytes (`batch.outputs[name]`, or its URL) as a stream. */
  download(output: BatchOutputView | { url: string } | string, options: { signal?: AbortSignal } = {}) {
    return download(this.transport, output, options);
  }
}
