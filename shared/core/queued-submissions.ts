import { ForbiddenError, ValidationError } from './errors.js';
import type { Jobs, PreparedJob, Submitted } from './jobs.js';
import { iamOwner, MAX_OWNER_LENGTH } from './owners.js';
import { idempotencyKeySchema, parseJson } from './schemas.js';

/** A submission as it came off the submit queue: a `POST /v1/jobs` body and what SQS says of it. */
export interface QueuedSubmission {
  body: string;
  messageId: string;
  /** The IAM principal that sent it (SQS's `SenderId`, which no sender can choose). */
  senderId: string;
  /** The `Owner` attribute: whose job a trusted sender submits. */
  owner?: string | undefined;
  /** The `IdempotencyKey` attribute. */
  idempotencyKey?: string | undefined;
}

/**
 * Whose job a queued submission makes: its sender's, or — for a trusted sender only (`trusted`:
 * owners such as `iam:AROA…`) — the owner its `Owner` attribute names.
 */
function ownerOf(submission: QueuedSubmission, trusted: ReadonlySet<string>): string {
  const sender = iamOwner(submission.senderId);
  const named = submission.owner;
  if (named === undefined) return sender;
  if (!trusted.has(sender)) {
    throw new ForbiddenError(`The Owner attribute is taken only from trusted submitters; ${sender} is not one`);
  }
  if (named.length === 0 || named.length > MAX_OWNER_LENGTH) {
    throw new ValidationError(`The Owner attribute must be 1..${MAX_OWNER_LENGTH} characters`);
  }
  return named;
}

/**
 * Reads one queued submission into a job ready to commit. The idempotency key is the
 * `IdempotencyKey` attribute, else the body's own `idempotencyKey`, else the message id, so a
 * redelivered message never makes a second job. `chosenKey`: a key the sender chose (which it
 * may replay), not the message id (which only a rare redelivery repeats).
 */
function prepareQueued(
  jobs: Pick<Jobs, 'prepare'>,
  submission: QueuedSubmission,
  trusted: ReadonlySet<string>,
): { job: PreparedJob; chosenKey: boolean } {
  const body = parseJson(submission.body);
  if (body === undefined) throw new ValidationError('Message body is not JSON');
  const attribute = submission.idempotencyKey;
  if (attribute !== undefined && !idempotencyKeySchema.safeParse(attribute).success) {
    throw new ValidationError('IdempotencyKey attribute must be 1..256 characters');
  }
  const bodyKey = Boolean(body && typeof body === 'object' && 'idempotencyKey' in body);
  const job = jobs.prepare(
    body,
    ownerOf(submission, trusted),
    attribute ?? (bodyKey ? undefined : submission.messageId),
  );
  return { job, chosenKey: attribute !== undefined || bodyKey };
}

/**
 * Submits a batch of queued submissions, answering each in order: its job, or why not (a
 * `JobsError` the contract refuses it with; anything else an outage, worth a retry). The whole
 * batch is prepared first, so the first task messages of every job in it go out ten to an SQS
 * request.
 */
export async function submitQueued(
  jobs: Pick<Jobs, 'prepare' | 'commit'>,
  submissions: readonly QueuedSubmission[],
  trusted: ReadonlySet<string>,
): Promise<(Submitted | { error: unknown })[]> {
  const outcomes: (Submitted | { error: unknown })[] = [];
  const ready: { at: number; job: PreparedJob; chosenKey: boolean }[] = [];
  submissions.forEach((submission, at) => {
    try {
      ready.push({ at, ...prepareQueued(jobs, submission, trusted) });
    } catch (error) {
      outcomes[at] = { error };
    }
  });
  if (ready.length === 0) return outcomes;
  try {
    const done = await jobs.commit(
      ready.map((r) => r.job),
      { lookUp: ready.map((r) => r.chosenKey) },
    );
    done.forEach((outcome, n) => {
      outcomes[ready[n]!.at] = outcome;
    });
  } catch (error) {
    // The messages could not be sent, so nothing was written: all of these come back later.
    for (const { at } of ready) outcomes[at] = { error };
  }
  return outcomes;
}
