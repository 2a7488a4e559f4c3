import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import * as z from 'zod';
import { ValidationError } from './errors.js';
import { JOB_STATUSES, type JobStatus, TASK_STATUSES } from './model.js';
import { MAX_OWNER_LENGTH, ownerKey } from './owners.js';
import type { AnyJob } from './ports.js';

/**
 * Find: an owner's jobs by type, status, creation time and meta, in creation order, with signed
 * cursors. No query of one owner reads another owner's index entries: the owner is in every key.
 *
 * Index writes are billed like table writes, so each index is keyed on attributes written once:
 * - `byOwner` (`sOwner` = owner#shard → `sOrder` = createdAt#id, `type` projected): every job, one
 *   entry written at create and never moved (the type never changes, so projecting it is free);
 * - `byOutcome` (`sEnd` = owner#status#shard → `sOrder`, `type` projected): only jobs that ended
 *   FAILED or ABORTED, one entry written when they end (a terminal status never changes).
 * A single-task job that succeeds costs one index write; one that fails or is aborted, two.
 *
 * Per query shape (what a page reads):
 * - `status=FAILED|ABORTED` (± type): the owner's byOutcome shards, the type filtered by DynamoDB on
 *   the projected `type` — index-served, only entries that match the status are read;
 * - `type` alone: the owner's byOwner shards, type filtered on the index — index-served, reads the
 *   owner's entries in the time range (~130 bytes each), loads only matching jobs;
 * - `status=SUCCEEDED|RUNNING|PENDING|HELD` (± type) or `meta.*`: the owner's byOwner shards, then the
 *   status and meta checked on the jobs themselves — bounded: each page reads at most `MAX_ROUNDS`
 *   rounds of `limit` jobs and answers with a cursor. SUCCEEDED is most jobs (few misses); active
 *   jobs are recent (found first in the default newest-first order).
 * Shards spread one owner's writes over `OWNER_SHARDS` partitions (no hot partition for an owner
 * submitting thousands of jobs a second); a page reads them all and merges by `sOrder`, and a
 * cursor is simply the last `sOrder` returned, so every partition resumes from the same point.
 */

export const OWNER_SHARDS = 16;

/** Terminal statuses that get an index entry of their own (the rare ones operators look for). */
export const OUTCOME_STATUSES: readonly JobStatus[] = ['FAILED', 'ABORTED'];

export interface SearchKeys {
  sOwner: string;
  sOrder: string;
  sEnd?: string;
}

export function shardOf(id: string): number {
  return createHash('sha256').update(id).digest()[0]! % OWNER_SHARDS;
}

export function searchKeys(job: { id: string; owner: string; status: JobStatus; createdAt: string }): SearchKeys {
  const owner = ownerKey(job.owner);
  const shard = shardOf(job.id);
  return {
    sOwner: `${owner}#${shard}`,
    sOrder: `${job.createdAt}#${job.id}`,
    ...(OUTCOME_STATUSES.includes(job.status) ? { sEnd: `${owner}#${job.status}#${shard}` } : {}),
  };
}

/** One partition of one index: the unit a page reads. */
export interface IndexPartition {
  index: 'byOwner' | 'byOutcome';
  key: string;
  /** Only entries of this type (both indexes project `type`). */
  type?: string;
}

/** What the engine needs from the store to search (DynamoDB Query + BatchGetItem in AWS). */
export interface JobIndex {
  /**
   * Entries of a partition with `lo ≤ sOrder ≤ hi`, in `order`, at most `limit` matching ones, after
   * reading at most `maxPages` pages. `exhausted` tells whether the partition has nothing more in range.
   */
  read(
    partition: IndexPartition,
    range: { lo: string; hi: string },
    order: 'asc' | 'desc',
    limit: number,
  ): Promise<{ entries: { id: string; order: string }[]; exhausted: boolean; frontier?: string }>;
  /** The jobs, by id (eventually consistent; missing or expired ones are left out). */
  load(ids: string[]): Promise<AnyJob[]>;
}

const META_PREFIX = 'meta.';
const MAX_META_FILTERS = 10;

const isoTime = z.iso.datetime({ offset: true }).transform((value) => new Date(value).toISOString());

export const searchJobsQuerySchema = z
  .object({
    type: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
      .optional(),
    status: z.enum(JOB_STATUSES).optional(),
    createdAfter: isoTime.optional(),
    createdBefore: isoTime.optional(),
    order: z.enum(['asc', 'desc']).default('desc'),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().min(1).max(1024).optional(),
    /** Admins only: whose jobs to search (default: the caller's own). */
    owner: z.string().min(1).max(MAX_OWNER_LENGTH).optional(),
  })
  .catchall(z.string())
  .superRefine((query, ctx) => {
    const known = new Set(['type', 'status', 'createdAfter', 'createdBefore', 'order', 'limit', 'cursor', 'owner']);
    const meta = Object.keys(query).filter((name) => !known.has(name));
    for (const name of meta) {
      if (!name.startsWith(META_PREFIX) || name.length === META_PREFIX.length) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: 'unknown filter (filters: type, status, createdAfter, createdBefore, meta.KEY)',
        });
      }
    }
    if (meta.length > MAX_META_FILTERS)
      ctx.addIssue({ code: 'custom', path: ['meta'], message: `at most ${MAX_META_FILTERS} meta filters` });
    if (query.createdAfter && query.createdBefore && query.createdAfter >= query.createdBefore) {
      ctx.addIssue({ code: 'custom', path: ['createdAfter'], message: 'must be before createdBefore' });
    }
  });

export type SearchJobsQuery = z.output<typeof searchJobsQuerySchema>;

export const searchTasksQuerySchema = z.strictObject({
  processor: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
    .optional(),
  status: z.enum(TASK_STATUSES).optional(),
  jobType: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
    .optional(),
  order: z.enum(['asc', 'desc']).default('desc'),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().min(1).max(1024).optional(),
  owner: z.string().min(1).max(MAX_OWNER_LENGTH).optional(),
});

export type SearchTasksQuery = z.output<typeof searchTasksQuerySchema>;

export function metaFilters(query: Record<string, unknown>): [string, string][] {
  return Object.entries(query)
    .filter(([name]) => name.startsWith(META_PREFIX))
    .map(([name, value]) => [name.slice(META_PREFIX.length), String(value)]);
}

/** A meta value matches a query value when it is that string, or that number/boolean/null written out. */
export function metaMatches(meta: Record<string, unknown> | undefined, filters: [string, string][]): boolean {
  return filters.every(([key, wanted]) => {
    const value = meta?.[key];
    if (value === undefined || (typeof value === 'object' && value !== null)) return false;
    return (typeof value === 'string' ? value : JSON.stringify(value)) === wanted;
  });
}

/** A position in the index as a Find cursor holds it: an `sOrder` (`createdAt#id`). */
export const orderKeySchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z#[A-Za-z0-9._:-]{1,128}$/, 'not a position in the index');

/** A refused cursor: the contract's VALIDATION_FAILED on `cursor`. */
export function badCursor(message: string): ValidationError {
  return new ValidationError('Bad cursor', [{ path: 'cursor', message }]);
}

/**
 * Cursors: `base64url(JSON).mac`, bound to the query they came from. A payload is read by its
 * schema as strictly as a query: the signature says who made it, not that it is sound (a key may
 * leak, or an old build may have sealed something this one must not trust).
 */
export class Cursors {
  constructor(private readonly key: () => Promise<string>) {}

  async seal(payload: Record<string, unknown>, fingerprint: string): Promise<string> {
    const body = Buffer.from(JSON.stringify({ ...payload, q: digest(fingerprint) })).toString('base64url');
    return `${body}.${mac(body, await this.key())}`;
  }

  async open<S extends z.ZodType<Record<string, unknown>>>(
    cursor: string,
    fingerprint: string,
    schema: S,
  ): Promise<z.output<S>> {
    const bad = badCursor;
    const [body, signature, ...rest] = cursor.split('.');
    if (!body || !signature || rest.length > 0) throw bad('not a cursor this API issued');
    const expected = Buffer.from(mac(body, await this.key()));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given))
      throw bad('not a cursor this API issued');
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      throw bad('not a cursor this API issued');
    }
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw bad('not a cursor this API issued');
    const { q, ...position } = payload as Record<string, unknown>;
    if (q !== digest(fingerprint)) throw bad('the cursor belongs to another query');
    const parsed = schema.safeParse(position);
    if (!parsed.success) throw bad('the cursor does not hold a valid position');
    return parsed.data;
  }
}

function mac(body: string, key: string): string {
  return createHmac('sha256', key).update(body).digest('base64url').slice(0, 22);
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

/** Which index partitions a query of `owner`'s jobs reads (see the table at the top). */
export function partitionsFor(owner: string, query: { type?: string; status?: JobStatus }): IndexPartition[] {
  const key = ownerKey(owner);
  const type = query.type ? { type: query.type } : {};
  const outcome = query.status !== undefined && OUTCOME_STATUSES.includes(query.status);
  return Array.from({ length: OWNER_SHARDS }, (_, shard) =>
    outcome
      ? { index: 'byOutcome' as const, key: `${key}#${query.status}#${shard}`, ...type }
      : { index: 'byOwner' as const, key: `${key}#${shard}`, ...type },
  );
}

/**
 * One merged run over the partitions from `after` (exclusive) on: up to `limit` entries in order,
 * and where to go on from. Partitions that stopped before their end (their read budget was spent
 * on non-matching entries) hold the page back at their frontier, so no entry is ever skipped.
 */
export async function mergedPage(
  index: JobIndex,
  partitions: IndexPartition[],
  bounds: { lo: string; hi: string },
  order: 'asc' | 'desc',
  limit: number,
  after: string | undefined,
): Promise<{ entries: { id: string; order: string }[]; next: string | undefined }> {
  const range =
    after === undefined
      ? bounds
      : order === 'asc'
        ? { lo: after > bounds.lo ? after : bounds.lo, hi: bounds.hi }
        : { lo: bounds.lo, hi: after < bounds.hi ? after : bounds.hi };
  if (range.lo > range.hi) return { entries: [], next: undefined };
  const reads = await Promise.all(partitions.map((p) => index.read(p, range, order, limit + 1)));
  const before = (a: string, b: string) => (order === 'asc' ? a < b : a > b);
  let frontier: string | undefined;
  for (const read of reads) {
    if (!read.exhausted && read.entries.length < limit + 1 && read.frontier !== undefined) {
      if (frontier === undefined || before(read.frontier, frontier)) frontier = read.frontier;
    }
  }
  const merged = reads
    .flatMap((read) => read.entries)
    .filter((entry) => entry.order !== after)
    .filter((entry) => frontier === undefined || !before(frontier, entry.order))
    .sort((a, b) => (a.order === b.order ? 0 : before(a.order, b.order) ? -1 : 1));
  const entries = merged.slice(0, limit);
  const more = merged.length > limit || reads.some((read) => !read.exhausted);
  const last = entries.at(-1)?.order;
  const next = !more ? undefined : entries.length === limit ? last : (frontier ?? last);
  return { entries, next };
}

export function timeBounds(query: { createdAfter?: string; createdBefore?: string }): { lo: string; hi: string } {
  // `createdBefore` is exclusive: `T#id` sorts after `T`, so `hi = T` leaves jobs created at T out.
  return { lo: query.createdAfter ?? '0', hi: query.createdBefore ?? '9' };
}
