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

/**
 * Read → change → write conditioned on the version read, again on conflict: the one way any job
 * changes. Changes of one job from this process take turns, since they would only conflict with
 * each other; across processes the condition decides, with full-jitter backoff between tries.
 */
export class VersionedUpdates<J extends { version: number }> {
  private readonly turns = new Map<string, Promise<void>>();

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
  async apply<T>(
    id: string,
    change: (item: J) => Change<J, T>,
    options: UpdateOptions<J> = {},
  ): Promise<T | undefined> {
    const previous = this.turns.get(id) ?? Promise.resolve();
    let release: () => void = () => {};
    const mine = new Promise<void>((resolve) => (release = resolve));
    const queue = previous.then(() => mine);
    this.turns.set(id, queue);
    await previous;
    try {
      for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
        const item = conflicts === 0 && options.first ? options.first : await this.items.read(id);
        if (!item) {
          if (options.missing === 'undefined') return undefined;
          throw new NotFoundError(`No job ${id}`);
        }
        const { write, value } = change(item);
        if (!write || (await this.items.replace(write, item.version))) return value;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 10 * 2 ** conflicts)));
      }
      throw new ConflictError(`Job ${id}: too many concurrent writes`);
    } finally {
      release();
      if (this.turns.get(id) === queue) this.turns.delete(id);
    }
  }
}

/** The item's next version: a deep copy, its version bumped and its time of change set. */
export function nextVersion<J extends { version: number; updatedAt: string }>(item: J, now: Date): J {
  const copy = structuredClone(item);
  copy.version = item.version + 1;
  copy.updatedAt = now.toISOString();
  return copy;
}
