import * as z from 'zod';
import type { BatchDelivery, BatchEngine, PreparedBatch } from './batches/engine.js';
import type { RowStatus } from './batches/model.js';
import { replayOf, type Submitted } from './create-job.js';
import type { DeliveryHooks, Verdict } from './delivery.js';
import { ValidationError } from './errors.js';
import { batchJobEvents, type JobEvent, taskJobEvents } from './events.js';
import { type Finder, searchOwner } from './find.js';
import { type Job, settled } from './model.js';
import { type Caller, visibleTo } from './owners.js';
import type { AnyJob, Clock, JobStore, PayloadStore } from './ports.js';
import type { AppendReply, JobSummary, JobView, Page, RowView, TaskSummaryView } from './responses.js';
import { parseOrThrow, submitBatchSchema, submitTasksSchema, type WorkMessage } from './schemas.js';
import type { Cursors, SearchJobsQuery, SearchTasksQuery } from './search.js';
import type { TaskEngine } from './tasks/engine.js';
import type { Transition } from './tasks/transitions.js';
import { shownTo, toJobSummary, toJobView, toRowView, toTaskSummary } from './view.js';

/** A validated submission of either kind, ready to be sent and written. */
export type PreparedJob = (Transition & { kind?: undefined }) | PreparedBatch;

export type { Submitted };

export interface JobsDeps {
  store: JobStore;
  tasks: TaskEngine;
  /** Batches (jobs of rows); without them a batch submission is refused. */
  batches?: BatchEngine;
  /** Find (job and task search); without it a search is refused. */
  finder?: Finder;
  /** Where large task values live: a job's view reads them back. */
  payloads: PayloadStore;
  /** Signs the events pages' cursors. */
  cursors: Cursors;
  clock: Clock;
  /** A long poll's pause between reads (real time unless a test says otherwise). */
  sleep?: (ms: number) => Promise<void>;
}

/** Events per page of `GET /v1/jobs/{id}/events`. */
const EVENTS_PAGE = 100;
/** Where a page of events goes on: this index in the job's events. */
const eventsCursor = z.strictObject({ e: z.number().int().min(0) });
/** A long poll's first pause between reads; each one doubles, up to the most. */
const FIRST_POLL_MS = 100;
const MOST_POLL_MS = 1000;

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One delivery of a work message, as the worker saw it. */
export interface WorkDelivery extends BatchDelivery {}

export function idempotencyKeyOf(headerKey: string | undefined, bodyKey: string | undefined): string | undefined {
  if (headerKey !== undefined && bodyKey !== undefined && headerKey !== bodyKey) {
    throw new ValidationError('Idempotency-Key header and idempotencyKey field differ', [
      { path: 'idempotencyKey', message: 'must equal the Idempotency-Key header when both are given' },
    ]);
  }
  return headerKey ?? bodyKey;
}

/**
 * The use cases on jobs of either kind, routed to the engine that runs that kind: the task engine
 * (`tasks/`) and the batch engine never know of each other. Handlers call this and nothing else.
 */
export class Jobs {
  constructor(private readonly deps: JobsDeps) {}

  /** Submit: prepare, then commit. */
  async submit(body: unknown, owner: string, headerKey?: string): Promise<Submitted> {
    const [outcome] = await this.commit([this.prepare(body, owner, headerKey)]);
    if (!outcome || 'error' in outcome) throw outcome?.error;
    return outcome;
  }

  /** Validates a submission of either kind for `owner` and builds its job, writing nothing. */
  prepare(body: unknown, owner: string, headerKey?: string): PreparedJob {
    if (body && typeof body === 'object' && 'batch' in body) {
      if ('tasks' in body) {
        throw new ValidationError('A job has tasks or a batch, not both', [
          { path: 'batch', message: 'give exactly one of tasks or batch' },
        ]);
      }
      const request = parseOrThrow(submitBatchSchema, body, 'Job');
      if (!this.deps.batches)
        throw new ValidationError('Batches are not enabled here', [{ path: 'batch', message: 'not enabled' }]);
      return this.deps.batches.prepare(request, owner, idempotencyKeyOf(headerKey, request.idempotencyKey));
    }
    const request = parseOrThrow(submitTasksSchema, body, 'Job');
    return this.deps.tasks.prepare(request, owner, idempotencyKeyOf(headerKey, request.idempotencyKey));
  }

  /**
   * Makes prepared jobs real, answering each in order. Replays are answered without sending or
   * writing anything (but for one whose first messages may never have gone, see `unsent`); the
   * jobs of tasks go out together (their first messages ten to an SQS request), each batch on its own.
   */
  async commit(
    prepared: PreparedJob[],
    options: { lookUp?: readonly boolean[] } = {},
  ): Promise<(Submitted | { error: unknown })[]> {
    const replays = await this.replays(prepared, options.lookUp);
    // A job of tasks never changed since its write may never have had its first messages (its
    // submitter died in between): its replay goes through the task engine, which sends them.
    const unsent = (i: number) => {
      const replay = replays[i];
      return typeof replay === 'object' && replay.kind !== 'batch' && replay.version === 1;
    };
    const fresh = prepared.map((_, i) => i).filter((i) => replays[i] === undefined || unsent(i));
    const taskJobs = fresh.filter((i) => prepared[i]!.kind !== 'batch');
    const batchJobs = fresh.filter((i) => prepared[i]!.kind === 'batch');
    const outcomes: (Submitted | { error: unknown } | undefined)[] = prepared.map(() => undefined);
    const done = await this.deps.tasks.commit(
      taskJobs.map((i) => prepared[i] as Transition),
      taskJobs.map((i) => (unsent(i) ? (replays[i] as Job) : undefined)),
    );
    done.forEach((outcome, n) => {
      outcomes[taskJobs[n]!] = outcome;
    });
    await Promise.all(
      batchJobs.map(async (i) => {
        outcomes[i] = await this.batches()
          .commit(prepared[i] as PreparedBatch)
          .catch((error: unknown) => ({ error }));
      }),
    );
    return prepared.map((next, i) => {
      const replay = replays[i];
      try {
        if (typeof replay === 'object' && !unsent(i)) return replayOf(next.job, replay);
        if (typeof replay === 'number') {
          // A second submission of one job in this very commit gets the answer its first got.
          const first = outcomes[replay];
          if (!first || 'error' in first) return first ?? { error: new Error('no first submission') };
          return replayOf(next.job, first.job);
        }
        return outcomes[i]!;
      } catch (error) {
        return { error };
      }
    });
  }

  /**
   * Submissions that are replays, to answer without sending or writing anything: a keyed one whose
   * job is already there (an eventually consistent read, half a read unit; `lookUp[i] === false`
   * skips it, for keys no caller chose: their replays are rare), and a later one of the same job
   * in this very commit (the index of its first). A replay the read misses (a moment after the
   * first write, or racing it) still sends its messages; their tickets are not the job's, so
   * they run nothing.
   */
  private async replays(
    prepared: PreparedJob[],
    lookUp: readonly boolean[] | undefined,
  ): Promise<(AnyJob | number | undefined)[]> {
    const first = new Map<string, number>();
    return Promise.all(
      prepared.map(async ({ job }, i) => {
        const earlier = first.get(job.id);
        if (earlier !== undefined) return earlier;
        first.set(job.id, i);
        if (job.idempotencyKey === undefined || lookUp?.[i] === false) return undefined;
        return this.deps.store.peek(job.id);
      }),
    );
  }

  /**
   * A job of either kind, if `caller` may see it (a foreign job is a missing one). With
   * `waitSeconds`, a long poll: read again, pausing longer each time, until the job is settled or
   * the wait is over.
   */
  async read(id: string, caller: Caller, options: { waitSeconds?: number } = {}): Promise<AnyJob> {
    const waitMs = (options.waitSeconds ?? 0) * 1000;
    const sleep = this.deps.sleep ?? realSleep;
    const start = this.deps.clock.now().getTime();
    let slept = 0;
    for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, MOST_POLL_MS)) {
      const job = visibleTo(caller, id, await this.deps.store.read(id));
      // Time passes at least as fast as the pauses do, whatever the clock says.
      const waited = Math.max(this.deps.clock.now().getTime() - start, slept);
      if (settled(job) || waited + pause > waitMs) return job;
      await sleep(pause);
      slept += pause;
    }
  }

  /** A job as API.md shows it, whichever its kind, as `caller` may see it. */
  async view(job: AnyJob, caller: Caller, options: { upload?: boolean } = {}): Promise<JobView> {
    if (job.kind === 'batch') return shownTo(caller, await this.batches().view(job, options));
    return shownTo(caller, await toJobView(job, this.deps.payloads));
  }

  /** A page of `caller`'s job events (API.md): derived from the job, paged by a sealed cursor. */
  async events(id: string, caller: Caller, cursor?: string): Promise<Page<JobEvent>> {
    const job = await this.read(id, caller);
    const events =
      job.kind === 'batch' ? batchJobEvents(job, await this.batches().tallies(job.id)) : taskJobEvents(job);
    const fingerprint = `events|${job.id}`;
    const from = cursor ? (await this.deps.cursors.open(cursor, fingerprint, eventsCursor)).e : 0;
    const next = from + EVENTS_PAGE < events.length ? from + EVENTS_PAGE : null;
    return {
      items: events.slice(from, from + EVENTS_PAGE),
      nextCursor: next === null ? null : await this.deps.cursors.seal({ e: next }, fingerprint),
    };
  }

  /** A page of jobs `caller` may search (its own; an admin names another owner), as search shows them. */
  async search(caller: Caller, query: SearchJobsQuery): Promise<Page<JobSummary>> {
    const page = await this.finder().jobs(searchOwner(caller, query.owner), query);
    const summary = async (job: AnyJob) =>
      shownTo(caller, job.kind === 'batch' ? await this.batches().view(job) : toJobSummary(job));
    return { items: await Promise.all(page.items.map(summary)), nextCursor: page.nextCursor };
  }

  /** A page of tasks of the jobs `caller` may search, as task search shows them. */
  async searchTasks(caller: Caller, query: SearchTasksQuery): Promise<Page<TaskSummaryView>> {
    const page = await this.finder().tasks(searchOwner(caller, query.owner), query);
    return {
      items: page.items.map(({ jobId, jobType, task }) => toTaskSummary(jobId, jobType, task)),
      nextCursor: page.nextCursor,
    };
  }

  /** Appends rows to a held batch (see BatchEngine.append). */
  append(id: string, caller: Caller, rows: unknown[], key?: string): Promise<AppendReply> {
    return this.batches().append(id, caller, rows, key);
  }

  /** A page of a batch's row outcomes, in line order, each as the rows route shows it. */
  async rows(
    id: string,
    caller: Caller,
    query: { status?: RowStatus; limit: number; cursor?: string },
  ): Promise<Page<RowView>> {
    const page = await this.batches().rows(id, caller, query);
    return { items: page.items.map(toRowView), nextCursor: page.nextCursor };
  }

  /** Releases a held batch: its rows are all there, planning may start. */
  release(id: string, caller: Caller) {
    return this.batches().release(id, caller);
  }

  /** Abort, by the job's kind; the read that tells the kind is the one the abort starts from. */
  async abort(id: string, caller: Caller): Promise<{ job: AnyJob; changed: boolean }> {
    const job = await this.read(id, caller);
    if (job.kind === 'batch') return this.batches().abort(id, caller, job);
    return this.deps.tasks.abort(id, caller, job as Job);
  }

  /** One delivery of a work message: a task, a batch chunk, or a batch step (plan, finalize). */
  async run(
    message: WorkMessage,
    delivery: WorkDelivery,
    hooks: DeliveryHooks & { planDeadline?: number } = {},
  ): Promise<Verdict> {
    if ('task' in message) return this.deps.tasks.runTask(message, delivery, hooks);
    if ('chunk' in message) return this.batches().runChunk(message, delivery, hooks);
    if (message.step === 'plan') {
      return this.batches().plan(message.jobId, delivery, {
        ...(message.from !== undefined ? { from: message.from } : {}),
        ...(message.resume !== undefined ? { resume: message.resume } : {}),
        ...(hooks.planDeadline !== undefined ? { deadline: hooks.planDeadline } : {}),
      });
    }
    return this.batches().finalize(message.jobId, message.from !== undefined ? { from: message.from } : {});
  }

  /** A work message that kept failing: its task or chunk fails as `poison`, so its job can end. */
  async poison(message: WorkMessage, reason: string, messageId?: string): Promise<void> {
    if ('chunk' in message) return this.batches().poisonChunk(message);
    if ('step' in message) return this.batches().poisonStep(message.jobId, message.step);
    return this.deps.tasks.poison(message, reason, messageId);
  }

  /**
   * The sweeper: finds unfinished jobs whose messages must have been lost (a crash between a write
   * and its send, a lost local queue) and sends them again.
   */
  async sweep(
    graceSeconds: number,
    options: { afterRestart?: boolean } = {},
  ): Promise<{ jobs: number; resent: number }> {
    const now = this.deps.clock.now().getTime();
    let jobs = 0;
    let resent = 0;
    const before = new Date(options.afterRestart ? now : now - graceSeconds * 1000);
    for await (const { id, kind } of this.deps.store.activeJobs(before)) {
      jobs++;
      if (kind === 'batch') {
        if (await this.deps.batches?.sweepOne(id, options.afterRestart ? 0 : graceSeconds)) resent++;
      } else {
        resent += await this.deps.tasks.sweepOne(id, graceSeconds, options);
      }
    }
    return { jobs, resent };
  }

  private batches(): BatchEngine {
    if (!this.deps.batches) throw new Error('This function was wired without batches');
    return this.deps.batches;
  }

  private finder(): Finder {
    if (!this.deps.finder) throw new Error('This function was wired without Find');
    return this.deps.finder;
  }
}
