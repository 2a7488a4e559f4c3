import { IdempotencyMismatchError } from './errors.js';
import type { AnyJob, JobStore } from './ports.js';

/** A submission's answer: its job, and whether this submission made it (else it is a replay). */
export type Submitted = { job: AnyJob; created: boolean };

/**
 * A replay's answer: the job its key made, provided the same request made it. Ids derive from
 * (owner, key), so the same key with another request is the caller's mistake, never a new job.
 */
export function replayOf(job: AnyJob, existing: AnyJob): Submitted {
  if (existing.requestHash !== job.requestHash || existing.kind !== job.kind || existing.owner !== job.owner) {
    throw new IdempotencyMismatchError('Idempotency key was already used with a different request');
  }
  return { job: existing, created: false };
}

/** Writes a new job once: a second write of its id answers with the job the first one made. */
export async function createOnce(store: JobStore, job: AnyJob): Promise<Submitted> {
  const outcome = await store.create(job);
  return outcome.created ? { job, created: true } : replayOf(job, outcome.existing);
}
