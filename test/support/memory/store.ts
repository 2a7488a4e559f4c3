import type { BatchJob } from '../../../shared/core/batches/model.js';
import { isTerminal, type Job } from '../../../shared/core/model.js';
import type { AnyJob, Clock, JobStore } from '../../../shared/core/ports.js';
import { systemClock } from '../../../shared/core/ports.js';

/** A job as the store keeps it: a JSON copy (as DynamoDB keeps JSON text), and when it expires. */
interface Stored {
  json: string;
  version: number;
  expiresAt?: number;
}

export interface MemoryJobStoreOptions {
  clock?: Clock;
  /** Days a finished job is kept (its idempotency key with it); past that it reads as gone. */
  retentionDays?: number;
  retentionByType?: Record<string, number>;
}

/**
 * The JobStore port in memory, keeping the promises the DynamoDB adapter keeps: a job goes in and
 * comes out as a copy (no caller shares an object with the store or with another caller), `create`
 * writes only an absent (or expired) id, `replace` only on the version named, `get`/`read` see
 * every write, and a finished job past its retention reads as absent.
 *
 * What DynamoDB does to a busy job a test can ask for: `peek` missing recent writes (eventual
 * consistency), and other writers winning races (`contend`).
 */
export class MemoryJobStore implements JobStore {
  private readonly items = new Map<string, Stored>();
  /** While set, what `peek` sees: the items as they were when `lagPeeks` was called. */
  private peekView: Map<string, Stored> | undefined;
  private readonly contention = new Map<string, number>();
  private readonly clock: Clock;
  private readonly retentionDays: number;
  private readonly retentionByType: Record<string, number>;
  /** Every conditional write, won or lost, in order: what a test may count. */
  readonly writes: { id: string; kind: 'create' | 'replace' | 'discard'; won: boolean }[] = [];

  constructor(options: MemoryJobStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.retentionDays = options.retentionDays ?? 30;
    this.retentionByType = options.retentionByType ?? {};
  }

  async create(job: AnyJob): Promise<{ created: true } | { created: false; existing: AnyJob }> {
    const stored = this.live(this.items, job.id);
    if (stored) {
      this.writes.push({ id: job.id, kind: 'create', won: false });
      return { created: false, existing: decode(stored) };
    }
    this.items.set(job.id, this.encode(job));
    this.writes.push({ id: job.id, kind: 'create', won: true });
    return { created: true };
  }

  async get(id: string): Promise<Job | undefined> {
    const job = await this.read(id);
    return job?.kind === 'tasks' ? job : undefined;
  }

  async read(id: string): Promise<AnyJob | undefined> {
    const stored = this.live(this.items, id);
    return stored && decode(stored);
  }

  async peek(id: string): Promise<AnyJob | undefined> {
    const stored = this.live(this.peekView ?? this.items, id);
    return stored && decode(stored);
  }

  async replace(job: AnyJob, expectedVersion: number): Promise<boolean> {
    const pending = this.contention.get(job.id) ?? 0;
    const current = this.items.get(job.id);
    if (pending > 0 && current) {
      // Another writer gets there first: its write bumps the version this one is conditioned on.
      this.contention.set(job.id, pending - 1);
      const theirs = JSON.parse(current.json) as AnyJob;
      theirs.version = current.version + 1;
      this.items.set(job.id, this.encode(theirs));
    }
    const stored = this.items.get(job.id);
    const won = stored !== undefined && stored.version === expectedVersion;
    if (won) this.items.set(job.id, this.encode(job));
    this.writes.push({ id: job.id, kind: 'replace', won });
    return won;
  }

  async discard(id: string, version: number): Promise<boolean> {
    const stored = this.live(this.items, id);
    const won = stored !== undefined && stored.version === version;
    if (won) this.items.delete(id);
    this.writes.push({ id, kind: 'discard', won });
    return won;
  }

  async *activeJobs(createdBefore: Date): AsyncIterable<{ id: string; kind: AnyJob['kind'] }> {
    const before = createdBefore.toISOString();
    // A copy of the keys: the sweeper writes while it walks them, as a Scan's pages allow.
    for (const [id, stored] of [...this.items]) {
      const job = decode(stored);
      if (job.createdAt >= before) continue;
      const unfinished = !isTerminal(job.status) || (job.kind === 'batch' && job.batch.outputs === undefined);
      if (unfinished) yield { id, kind: job.kind };
    }
  }

  // ─── For tests ────────────────────────────────────────────────────────────────────────────────

  /** From now until `settle()`, `peek` misses every write made after this call (eventual reads). */
  lagPeeks(): void {
    this.peekView = new Map(this.items);
  }

  settle(): void {
    this.peekView = undefined;
  }

  /** The next `times` conditional writes of job `id` lose to another writer (a crowded job). */
  contend(id: string, times = Number.POSITIVE_INFINITY): void {
    this.contention.set(id, times);
  }

  /** Writes a job as another process would (no version check): a test's way to set the scene. */
  put(job: AnyJob): void {
    this.items.set(job.id, this.encode(job));
  }

  /** Forgets a job, as a lost write or TTL would. */
  delete(id: string): void {
    this.items.delete(id);
  }

  ids(): string[] {
    return [...this.items.keys()];
  }

  private live(items: Map<string, Stored>, id: string): Stored | undefined {
    const stored = items.get(id);
    if (!stored) return undefined;
    if (stored.expiresAt !== undefined && stored.expiresAt <= this.clock.now().getTime()) return undefined;
    return stored;
  }

  private encode(job: AnyJob): Stored {
    const ended = isTerminal(job.status) && job.endedAt !== undefined;
    const days = this.retentionByType[job.type] ?? this.retentionDays;
    return {
      json: JSON.stringify(job),
      version: job.version,
      ...(ended ? { expiresAt: Date.parse(job.endedAt as string) + days * 86_400_000 } : {}),
    };
  }
}

function decode(stored: Stored): AnyJob {
  return JSON.parse(stored.json) as Job | BatchJob;
}
