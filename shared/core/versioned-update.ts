import { NotFoundError } from './errors.js';

/** How often a conditional write may lose to a concurrent one before we give up (the message is retried). */
export const MAX_CONFLICTS = 50;

/** A job kept changing under us: the caller retries later (a worker brings its message back soon). */
export class ConflictError extends Error {}

/** What one change decides: the item to write (none: nothing to write) and what to answer once written. */
export interface Change<J, T> {
  write?: J;
  value: T;
}

export interface VersionedItems<J extends { version: number }> {
  /** A strongly consistent read; undefined for an item that is not there (or not of this kind). */
  read(id: string): Promise<J | undefined>;
  /** Writes `item` only if the stored version is still `expectedVersion`. */
  replace(item: J, expectedVersion: number): Promise<boolean>;
}

export interface UpdateOptions<J> {
  /** `throw` (a NotFoundError) or answer `undefined` when the item is not there. */
  missing?: 'throw' | 'undefined';
  /** An item the caller knows to be current, used instead of the first read (a conflict means it was not). */
  first?: J;
}

/** A change waiting for its turn, and how to answer its caller. */
interface Pending<J> {
  change: (item: J) => Change<J, unknown>;
  options: UpdateOptions<J>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** What one change made of the item it was given: its answer, or the error it threw. */
type Applied = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Read → change → write conditioned on the version read, again on conflict: the one way any job
 * changes. Across processes the condition decides, with full-jitter backoff between tries.
 *
 * Changes of one job from this process would only conflict with each other, so they take turns;
 * and the changes that queued up while a turn was under way go together in the next one: one read,
 * each change applied to what the one before it made, one write. That is the order the turns would
 * have run in anyway, so each caller gets the answer it would have got alone, while a worker whose
 * ten messages belong to one concurrent job reads and rewrites that job about twice, not ten times
 * (the job item holds every task, so each write bills the whole list).
 */
export class VersionedUpdates<J extends { version: number }> {
  private readonly waiting = new Map<string, Pending<J>[]>();

  constructor(private readonly items: VersionedItems<J>) {}

  apply<T>(
    id: string,
    change: (item: J) => Change<J, T>,
    options?: UpdateOptions<J> & { missing?: 'throw' },
  ): Promise<T>;
  apply<T>(
    id: string,
    change: (item: J) => Change<J, T>,
    options: UpdateOptions<J> & { missing: 'undefined' },
  ): Promise<T | undefined>;
  apply<T>(id: string, change: (item: J) => Change<J, T>, options: UpdateOptions<J> = {}): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      const entry: Pending<J> = { change, options, resolve: resolve as (value: unknown) => void, reject };
      const queue = this.waiting.get(id);
      if (queue) {
        queue.push(entry);
        return;
      }
      this.waiting.set(id, [entry]);
      void this.turns(id);
    });
  }

  /** Runs the turns of job `id` until no change of it is waiting. */
  private async turns(id: string): Promise<void> {
    for (;;) {
      const batch = this.waiting.get(id) ?? [];
      if (batch.length === 0) {
        this.waiting.delete(id);
        return;
      }
      // Changes arriving from now on wait for the next turn.
      this.waiting.set(id, []);
      try {
        await this.turn(id, batch);
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
    }
  }

  /** One turn: every change of `batch` applied in order to one read, and written once. */
  private async turn(id: string, batch: Pending<J>[]): Promise<void> {
    // Only the turn's first change may vouch for the item: the later ones' basis predates it.
    const first = batch[0]?.options.first;
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const item = conflicts === 0 && first ? first : await this.items.read(id);
      if (!item) {
        for (const entry of batch) {
          if (entry.options.missing === 'undefined') entry.resolve(undefined);
          else entry.reject(new NotFoundError(`No job ${id}`));
        }
        return;
      }
      let current = item;
      let changed = false;
      const applied: Applied[] = batch.map((entry) => {
        try {
          const { write, value } = entry.change(current);
          if (write) {
            current = write;
            changed = true;
          }
          return { ok: true, value };
        } catch (error) {
          // A change that refuses (a foreign job, say) leaves the item as the others find it.
          return { ok: false, error };
        }
      });
      if (!changed || (await this.items.replace(current, item.version))) {
        applied.forEach((outcome, i) => {
          const entry = batch[i]!;
          if (outcome.ok) entry.resolve(outcome.value);
          else entry.reject(outcome.error);
        });
        return;
      }
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 10 * 2 ** conflicts)));
    }
    throw new ConflictError(`Job ${id}: too many concurrent writes`);
  }
}

/** The item's next version: a deep copy, its version bumped and its time of change set. */
export function nextVersion<J extends { version: number; updatedAt: string }>(item: J, now: Date): J {
  const copy = structuredClone(item);
  copy.version = item.version + 1;
  copy.updatedAt = now.toISOString();
  return copy;
}
