import * as z from 'zod';
import { InvalidStateError, ValidationError } from './errors.js';
import type { Job } from './model.js';
import type { Caller } from './owners.js';
import type { AnyJob } from './ports.js';
import { MAX_TASKS } from './schemas.js';
import {
  type Cursors,
  type JobIndex,
  mergedPage,
  metaFilters,
  metaMatches,
  orderKeySchema,
  partitionsFor,
  type SearchJobsQuery,
  type SearchTasksQuery,
  timeBounds,
} from './search.js';

/** Rounds of index reads one search request may make before it answers with what it has (and a cursor). */
const MAX_ROUNDS = 8;

/** Where a page of jobs goes on: after this index position. */
const jobsCursor = z.strictObject({ o: orderKeySchema });
/** Where a page of tasks goes on: after this position, or inside its job from task `t`. */
const tasksCursor = z.strictObject({ o: orderKeySchema, t: z.number().int().min(0).max(MAX_TASKS).optional() });

export interface TaskSummary {
  jobId: string;
  jobType: string;
  task: Job['tasks'][number];
}

/** Whose jobs a search reads: the caller's own, or (admins only) the owner it names. */
export function searchOwner(caller: Caller, named: string | undefined): string {
  if (named === undefined || named === caller.owner) return caller.owner;
  if (!caller.admin) {
    throw new ValidationError('Only an admin may search the jobs of another owner', [
      { path: 'owner', message: 'leave it out to search your own jobs' },
    ]);
  }
  return named;
}

/** The Find use cases: search jobs, search tasks. See search.ts for the index design. */
export class Finder {
  constructor(
    private readonly index: JobIndex,
    readonly cursors: Cursors,
    private readonly enabled = true,
  ) {}

  private ensureEnabled(): void {
    if (!this.enabled) {
      throw new InvalidStateError('Find is switched off in this deployment (SEARCH_INDEX=off saves its index writes)');
    }
  }

  /**
   * A page of jobs. Meta filters and expiry are checked on the loaded jobs, so a page may hold
   * fewer than `limit` jobs and still carry a cursor: read on while `nextCursor` is not null.
   */
  async jobs(owner: string, query: SearchJobsQuery): Promise<{ items: AnyJob[]; nextCursor: string | null }> {
    this.ensureEnabled();
    const meta = metaFilters(query);
    const fingerprint = JSON.stringify([
      'jobs',
      owner,
      query.type,
      query.status,
      query.createdAfter,
      query.createdBefore,
      query.order,
      meta.sort(),
    ]);
    let after = query.cursor ? (await this.cursors.open(query.cursor, fingerprint, jobsCursor)).o : undefined;
    const partitions = partitionsFor(owner, query);
    const bounds = timeBounds(query);
    const items: AnyJob[] = [];
    const seen = new Set<string>();
    for (let round = 0; round < MAX_ROUNDS && items.length < query.limit; round++) {
      const page = await mergedPage(this.index, partitions, bounds, query.order, query.limit - items.length, after);
      const ids = page.entries.map((e) => e.id).filter((id) => !seen.has(id));
      for (const id of ids) seen.add(id);
      const loaded = new Map((await this.index.load(ids)).map((job) => [job.id, job]));
      for (const id of ids) {
        const job = loaded.get(id);
        // The index may lag a status change by a moment: the job itself has the last word.
        if (
          !job ||
          job.owner !== owner ||
          (query.status && job.status !== query.status) ||
          (query.type && job.type !== query.type)
        )
          continue;
        if (metaMatches(job.meta, meta)) items.push(job);
      }
      after = page.next;
      if (after === undefined) break;
    }
    return { items, nextCursor: after === undefined ? null : await this.cursors.seal({ o: after }, fingerprint) };
  }

  /**
   * A page of tasks, read off the jobs in creation order (`jobType` narrows to one type's index).
   * Tasks live inside their job's item, so this reads jobs: selective filters without `jobType` read
   * many jobs per page (the README says what that costs).
   */
  async tasks(owner: string, query: SearchTasksQuery): Promise<{ items: TaskSummary[]; nextCursor: string | null }> {
    this.ensureEnabled();
    const fingerprint = JSON.stringify(['tasks', owner, query.processor, query.status, query.jobType, query.order]);
    const position = query.cursor ? await this.cursors.open(query.cursor, fingerprint, tasksCursor) : undefined;
    const items: TaskSummary[] = [];
    const matches = (job: Job) =>
      job.tasks.filter(
        (task) =>
          (query.processor === undefined || task.processor === query.processor) &&
          (query.status === undefined || task.status === query.status),
      );
    // Resume inside the job the last page stopped in (`t`: the task to go on from).
    if (position?.t !== undefined) {
      const id = position.o.slice(position.o.indexOf('#') + 1);
      const [job] = await this.index.load([id]);
      if (job?.kind === 'tasks' && job.owner === owner) {
        for (const task of matches(job).filter((t) => t.index >= (position.t ?? 0))) {
          if (items.length === query.limit) {
            return { items, nextCursor: await this.cursors.seal({ o: position.o, t: task.index }, fingerprint) };
          }
          items.push({ jobId: job.id, jobType: job.type, task });
        }
      }
    }
    let after = position?.o;
    const partitions = partitionsFor(owner, { ...(query.jobType ? { type: query.jobType } : {}) });
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const page = await mergedPage(this.index, partitions, timeBounds({}), query.order, 100, after);
      const loaded = new Map((await this.index.load(page.entries.map((e) => e.id))).map((job) => [job.id, job]));
      for (const entry of page.entries) {
        const job = loaded.get(entry.id);
        if (job?.kind !== 'tasks' || job.owner !== owner) continue;
        for (const task of matches(job)) {
          if (items.length === query.limit) {
            return { items, nextCursor: await this.cursors.seal({ o: entry.order, t: task.index }, fingerprint) };
          }
          items.push({ jobId: job.id, jobType: job.type, task });
        }
      }
      after = page.next;
      if (after === undefined) break;
    }
    return { items, nextCursor: after === undefined ? null : await this.cursors.seal({ o: after }, fingerprint) };
  }
}
