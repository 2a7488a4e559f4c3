import { createHash } from 'node:crypto';
import { NotFoundError } from './errors.js';

/**
 * Tenancy. Every job belongs to the owner that submitted it: an IAM principal, a JWT claim, or the
 * sender of a queued submission (see `shared/http/callers.ts` and the submit consumer for how each is
 * derived). Every route acts on the caller's own jobs only; an admin sees every owner's.
 */
export interface Caller {
  /** The owner this caller's requests act for: who submits, whose jobs it reads. */
  owner: string;
  /** Configured per environment: may read and act on every owner's jobs. */
  admin: boolean;
}

/** Owners are opaque strings from our own derivation; this bounds what is stored and hashed. */
export const MAX_OWNER_LENGTH = 512;

/** Whether `caller` may see `job`. */
export function canSee(caller: Caller, job: { owner: string }): boolean {
  return caller.admin || job.owner === caller.owner;
}

/**
 * The job, if `caller` may see it. A foreign job is reported exactly like a missing one, so ids
 * cannot be probed.
 */
export function visibleTo<J extends { owner: string }>(caller: Caller, id: string, job: J | undefined): J {
  if (!job || !canSee(caller, job)) throw new NotFoundError(`No job ${id}`);
  return job;
}

/**
 * The owner as index keys carry it: a fixed-length digest, so keys stay small whatever the owner
 * (an ARN is ~80 bytes and every index entry repeats it) and no owner can spell another's key.
 */
export function ownerKey(owner: string): string {
  return createHash('sha256').update(owner).digest('base64url').slice(0, 22);
}

/**
 * The owner of an IAM principal, from its unique id: `AIDA…` for a user, `AROA…:session` for a
 * role's session (the session part differs per Lambda invocation or task, so the role is the owner).
 * API Gateway's IAM authorizer (`userId`) and SQS's `SenderId` give the same id for one principal,
 * so a service owns the same jobs whether it submits over HTTP or through the queue.
 */
export function iamOwner(uniqueId: string): string {
  return `iam:${uniqueId.split(':')[0]}`;
}

/** The owner of a JWT caller: the configured claim (default `sub`; e.g. `tenant` for shared tenants). */
export function jwtOwner(claim: string, value: string): string {
  return `jwt:${claim}:${value}`;
}
