import type { Clock } from './ports.js';

/**
 * The fate of one delivery of a work message, decided by the engine and carried out by the
 * worker: delete it (`done`), hide it for a while (`retry`), or leave it exactly as it is
 * (`keep`: a stale attempt, whose message is now another attempt's lease and must neither be
 * deleted nor have its visibility changed).
 */
export type Verdict = { kind: 'done' } | { kind: 'retry'; delaySeconds: number } | { kind: 'keep' };

export const DONE = { kind: 'done' } as const satisfies Verdict;

export function retryIn(delaySeconds: number): Extract<Verdict, { kind: 'retry' }> {
  return { kind: 'retry', delaySeconds };
}

/** What a worker lends the engine while a message runs: moving its visibility, and its own deadline. */
export interface DeliveryHooks {
  /** Hides the message for `seconds` from now: the lease of a run that takes a while. */
  onLease?: (seconds: number) => Promise<void>;
  /** Aborted when the worker must stop waiting (its own time is running out). */
  signal?: AbortSignal;
}

/**
 * How long a message may wait for its job to be written before it counts as an orphan. Messages
 * are sent just before their job is written (so no job is ever left without them): a young one
 * may have overtaken the write; one whose job never appears was for a submission that failed.
 */
export const UNBORN_JOB_GRACE_MS = 60_000;

/** How soon a message whose job is not there yet comes back to look again. */
export const UNBORN_RETRY_SECONDS = 2;

/** How old a message is (ms), counting from when it was first sent; unknown counts as ancient. */
export function messageAge(clock: Clock, sentAt: number | undefined): number {
  return sentAt === undefined ? Number.POSITIVE_INFINITY : clock.now().getTime() - sentAt;
}

/**
 * A message whose job is not there: held while it may still be on its way (`retry`), dropped once
 * it cannot be (`done`).
 */
export function unbornVerdict(clock: Clock, sentAt: number | undefined): Exclude<Verdict, { kind: 'keep' }> {
  return messageAge(clock, sentAt) < UNBORN_JOB_GRACE_MS ? retryIn(UNBORN_RETRY_SECONDS) : DONE;
}
