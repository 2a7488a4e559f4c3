import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { UnauthorizedError } from '../core/errors.js';
import { type Caller, iamOwner, jwtOwner, MAX_OWNER_LENGTH } from '../core/owners.js';

/**
 * Who may act as whom, per environment (set by the CDK stack from `cdk.json`, or locally):
 * - `JWT_OWNER_CLAIM`: the claim that names a JWT caller's owner (default `sub`; `tenant` lets the
 *   users of one tenant share their jobs);
 * - `ADMIN_PRINCIPALS`: comma-separated owners (`iam:AROA…`, `jwt:sub:…`) or IAM ARNs (a role's
 *   ARN covers its sessions) that see every owner's jobs;
 * - `ADMIN_SCOPE`: a JWT scope that makes its bearer an admin.
 */
export interface CallerPolicy {
  ownerClaim: string;
  adminPrincipals: string[];
  adminScope?: string;
}

export function callerPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): CallerPolicy {
  return {
    ownerClaim: env.JWT_OWNER_CLAIM || 'sub',
    adminPrincipals: (env.ADMIN_PRINCIPALS ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
    ...(env.ADMIN_SCOPE ? { adminScope: env.ADMIN_SCOPE } : {}),
  };
}

/** The authorizer contexts API Gateway (HTTP API, payload 2.0) puts on a request. */
interface Authorizers {
  iam?: { userId?: string; userArn?: string };
  jwt?: { claims?: Record<string, unknown>; scopes?: string[] | null };
}

/**
 * `arn:aws:sts::123:assumed-role/Role/session` → `arn:aws:iam::123:role/Role`, so an admin role is
 * configured once for all its sessions. Other ARNs stay as they are.
 */
export function principalArn(arn: string): string {
  const assumed = /^arn:([^:]+):sts::(\d+):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return assumed ? `arn:${assumed[1]}:iam::${assumed[2]}:role/${assumed[3]}` : arn;
}

/**
 * The caller of an API request, from what API Gateway's authorizer verified: never from anything
 * the caller merely says. Without an authorizer context (a route misconfigured as open) the request
 * is refused rather than served as nobody's.
 */
export function callerOf(event: APIGatewayProxyEventV2, policy: CallerPolicy): Caller {
  const authorizer = (event.requestContext as { authorizer?: Authorizers }).authorizer;
  const admins = new Set(policy.adminPrincipals);
  if (authorizer?.iam?.userId) {
    const owner = iamOwner(authorizer.iam.userId);
    const arn = authorizer.iam.userArn ? principalArn(authorizer.iam.userArn) : undefined;
    return checked({ owner, admin: admins.has(owner) || (arn !== undefined && admins.has(arn)) });
  }
  const claims = authorizer?.jwt?.claims;
  if (claims) {
    const value = claims[policy.ownerClaim];
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw new UnauthorizedError(`The token has no '${policy.ownerClaim}' claim to name its owner`);
    }
    const owner = jwtOwner(policy.ownerClaim, String(value));
    const scopes = authorizer?.jwt?.scopes ?? String(claims.scope ?? '').split(' ');
    const admin = admins.has(owner) || (policy.adminScope !== undefined && scopes.includes(policy.adminScope));
    return checked({ owner, admin });
  }
  throw new UnauthorizedError('No verified caller on this request');
}

function checked(caller: Caller): Caller {
  if (caller.owner.length > MAX_OWNER_LENGTH) throw new UnauthorizedError('The caller identity is too long');
  return caller;
}
