import { createHash, generateKeyPairSync, type KeyObject, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/protocols';
import { SignatureV4 } from '@smithy/signature-v4';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  exportJWK,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import { z } from 'zod';
import { errorResponse, json } from '../../shared/http/responses.js';
import { DEFAULT_LOCAL_PRINCIPAL, localPrincipal } from './principals.js';

/**
 * API Gateway's authorizers, played locally: the API function gets `requestContext.authorizer`
 * filled as AWS fills it (payload 2.0), and refused requests get API Gateway's own answers
 * (403 `{"message":"Forbidden"}` for IAM, 401 `{"message":"Unauthorized"}` for JWT) without the
 * function ever running.
 */

/** `requestContext.authorizer` of an IAM-authorized route (field names as AWS sends them). */
export interface IamAuthorizerContext {
  iam: {
    accessKey: string;
    accountId: string;
    callerId: string;
    cognitoIdentity: null;
    principalOrgId: null;
    userArn: string;
    userId: string;
  };
}

/** `requestContext.authorizer` of a JWT-authorized route; AWS hands every claim over as a string. */
export interface JwtAuthorizerContext {
  jwt: { claims: Record<string, string>; scopes: string[] | null };
}

export type AuthorizerContext = IamAuthorizerContext | JwtAuthorizerContext;

export type AuthOutcome =
  | { ok: true; authorizer: AuthorizerContext }
  | { ok: false; result: APIGatewayProxyStructuredResultV2 };

export interface Authorizer {
  mode: LocalAuthMode;
  authorize(request: IncomingMessage, body: Buffer): Promise<AuthOutcome>;
}

export type LocalAuthMode = 'none' | 'iam' | 'jwt';

/** A local IAM user: its name becomes `arn:aws:iam::000000000000:user/<name>`. */
export interface LocalIamUser {
  name: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface LocalAuthOptions {
  mode: LocalAuthMode;
  /** `iam` mode: the known users (default: one user `local` with the local cloud's credentials). */
  users?: LocalIamUser[];
  /** `jwt` mode: the audience tokens must name (default `jobs-local`). */
  audience?: string;
}

export const DEFAULT_JWT_AUDIENCE = 'jobs-local';
/** Names that can stand in an IAM user ARN and a header without escaping. */
const PRINCIPAL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const principalName = z.string().regex(PRINCIPAL_NAME, 'must be 1 to 64 of A-Z a-z 0-9 _ . -');
const iamUsersSchema = z
  .array(z.strictObject({ name: principalName, accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1) }))
  .min(1);

/**
 * The `requestContext.authorizer` of a request signed by local user `name`: its ARN and userId
 * come from `localPrincipal` (stable per name, the same ids the local SQS puts in `SenderId`), so
 * tests can compute the owner they expect.
 */
export function iamContext(name: string, accessKey = 'LOCAL'): IamAuthorizerContext {
  const { userArn, userId, accountId } = localPrincipal(name);
  return {
    iam: { accessKey, accountId, callerId: userId, cognitoIdentity: null, principalOrgId: null, userArn, userId },
  };
}

/** `none`: no credentials; header `X-Local-Owner` picks the local user a request acts as. */
export function noneAuthorizer(): Authorizer {
  return {
    mode: 'none',
    async authorize(request) {
      const header = request.headers['x-local-owner'];
      if (header === undefined) return { ok: true, authorizer: iamContext(DEFAULT_LOCAL_PRINCIPAL) };
      const name = Array.isArray(header) ? header.join(',') : header;
      if (!PRINCIPAL_NAME.test(name)) {
        return {
          ok: false,
          result: errorResponse('VALIDATION_FAILED', 'X-Local-Owner header is not a valid owner name', [
            { path: 'X-Local-Owner', message: 'must be 1 to 64 of A-Z a-z 0-9 _ . -' },
          ]),
        };
      }
      return { ok: true, authorizer: iamContext(name) };
    },
  };
}

const FORBIDDEN: AuthOutcome = { ok: false, result: json(403, { message: 'Forbidden' }) };
/** How far X-Amz-Date may be from now, either way, as AWS allows. */
const SIGNATURE_SKEW_MS = 15 * 60 * 1000;
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/\s,]+)\/(\d{8})\/([^/\s,]+)\/([^/\s,]+)\/aws4_request, ?SignedHeaders=([a-z0-9!#$%&'*+.^_`|~-]+(?:;[a-z0-9!#$%&'*+.^_`|~-]+)*), ?Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** `20240102T030405Z` → that instant; undefined unless it names a real one (no month 13). */
function parseAmzDate(value: string): Date | undefined {
  if (!AMZ_DATE.test(value)) return undefined;
  const date = new Date(value.replace(AMZ_DATE, '$1-$2-$3T$4:$5:$6Z'));
  if (Number.isNaN(date.getTime())) return undefined;
  return date.toISOString().replace(/[-:]|\.\d{3}/g, '') === value ? date : undefined;
}

/**
 * `iam`: verifies SigV4 as API Gateway does, by recomputing the signature over what arrived with
 * the SDK's own signer (service `execute-api`, the local region), so a client the SDK, curl or
 * any other SigV4 signer signed is accepted exactly when AWS would accept it.
 */
export function iamAuthorizer(options: { users: LocalIamUser[]; region: string; now?: () => number }): Authorizer {
  const users = iamUsersSchema.parse(options.users);
  const byKey = new Map(users.map((user) => [user.accessKeyId, user]));
  if (byKey.size !== users.length) throw new Error('Local IAM users must have distinct access key ids');
  const now = options.now ?? Date.now;

  return {
    mode: 'iam',
    async authorize(request, body) {
      const header = request.headers.authorization;
      const parts = typeof header === 'string' ? AUTHORIZATION.exec(header) : null;
      if (!parts) return FORBIDDEN;
      const [, accessKeyId = '', scopeDate, region, service, signedHeaders = '', signature = ''] = parts;
      const user = byKey.get(accessKeyId);
      if (!user || region !== options.region || service !== 'execute-api') return FORBIDDEN;

      const amzDate = request.headers['x-amz-date'];
      const signingDate = typeof amzDate === 'string' ? parseAmzDate(amzDate) : undefined;
      if (!signingDate || amzDate?.slice(0, 8) !== scopeDate) return FORBIDDEN;
      if (Math.abs(now() - signingDate.getTime()) > SIGNATURE_SKEW_MS) return FORBIDDEN;

      const names = signedHeaders.split(';');
      if (!names.includes('host') || !names.includes('x-amz-date')) return FORBIDDEN;
      const contentHash = request.headers['x-amz-content-sha256'];
      if (contentHash !== undefined && contentHash !== createHash('sha256').update(body).digest('hex')) {
        return FORBIDDEN;
      }
      const headers: Record<string, string> = {};
      for (const name of names) {
        const values = request.headersDistinct[name];
        if (!values) return FORBIDDEN;
        headers[name] = values.join(',');
      }
      const target = request.url ?? '/';
      const q = target.indexOf('?');
      const query = q < 0 ? {} : parseQuery(target.slice(q + 1));
      if (!query) return FORBIDDEN;

      const signer = new SignatureV4({
        credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey },
        region: options.region,
        service: 'execute-api',
        sha256: Sha256,
        // Only what the client signed takes part; the signer must not add a payload-hash header of its own.
        applyChecksum: false,
      });
      const expected = await signer.sign(
        new HttpRequest({
          method: request.method ?? 'GET',
          protocol: 'http:',
          hostname: 'localhost',
          path: q < 0 ? target : target.slice(0, q),
          query,
          headers,
          body: body.length ? body : undefined,
        }),
        { signingDate, signableHeaders: new Set(names) },
      );
      const recomputed = AUTHORIZATION.exec(String(expected.headers.authorization));
      if (recomputed?.[5] !== signedHeaders || !recomputed[6]) return FORBIDDEN;
      if (!timingSafeEqual(Buffer.from(recomputed[6]), Buffer.from(signature))) return FORBIDDEN;
      return { ok: true, authorizer: iamContext(user.name, user.accessKeyId) };
    },
  };
}

/** The query as SigV4 reads it: decoded names and values, repeats kept; undefined if an escape is broken. */
function parseQuery(raw: string): Record<string, string[]> | undefined {
  const query: Record<string, string[]> = {};
  try {
    for (const pair of raw.split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      const name = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
      const value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1));
      if (!Object.hasOwn(query, name)) query[name] = [];
      query[name]?.push(value);
    }
  } catch {
    return undefined;
  }
  return query;
}

export interface JwtAuthority {
  audience: string;
  issuer(): string;
  /** The public half of the signing key, as a JWKS endpoint serves it. */
  jwks: JSONWebKeySet;
  /** A token from the local issuer: `iss`, `aud`, `iat` and `exp` (in `expiresIn` seconds, default 3600) unless `claims` sets them. */
  issue(claims?: JWTPayload, options?: { expiresIn?: number }): Promise<string>;
  /** `POST /local/token`: a JSON object of claims in, an OAuth-style token answer out. */
  tokenEndpoint(body: Buffer): Promise<APIGatewayProxyStructuredResultV2>;
}

/** An RS256 key pair made at start (never written anywhere) and the tokens it signs. */
export async function createJwtAuthority(options: { issuer: () => string; audience?: string }): Promise<JwtAuthority> {
  const audience = options.audience ?? DEFAULT_JWT_AUDIENCE;
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  const jwks: JSONWebKeySet = { keys: [{ ...jwk, kid, alg: 'RS256', use: 'sig' }] };
  const issue = (claims: JWTPayload = {}, issueOptions: { expiresIn?: number } = {}) =>
    signToken(privateKey, kid, {
      iss: options.issuer(),
      aud: audience,
      iat: Math.floor(Date.now() / 1000),
      exp: Math.floor(Date.now() / 1000) + (issueOptions.expiresIn ?? 3600),
      ...claims,
    });
  return {
    audience,
    issuer: options.issuer,
    jwks,
    issue,
    async tokenEndpoint(body) {
      let claims: unknown;
      try {
        claims = body.length ? JSON.parse(body.toString('utf8')) : {};
      } catch (error) {
        return errorResponse('VALIDATION_FAILED', 'Body is not valid JSON', [
          { path: '', message: (error as Error).message },
        ]);
      }
      if (!claims || typeof claims !== 'object' || Array.isArray(claims)) {
        return errorResponse('VALIDATION_FAILED', 'Body must be a JSON object of claims', [
          { path: '', message: 'expected an object' },
        ]);
      }
      const token = await issue(claims as JWTPayload);
      const { exp } = claims as JWTPayload;
      const expiresIn = typeof exp === 'number' ? exp - Math.floor(Date.now() / 1000) : 3600;
      return json(200, { access_token: token, token_type: 'Bearer', expires_in: expiresIn });
    },
  };
}

/** Signs any claims with any key: the local issuer uses it, and tests forge tokens with it. */
export function signToken(privateKey: KeyObject, kid: string, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(privateKey);
}

const TOKEN = /^(?:Bearer )?([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

function unauthorized(description: string): AuthOutcome {
  return {
    ok: false,
    result: json(
      401,
      { message: 'Unauthorized' },
      { 'www-authenticate': `Bearer scope="" error="invalid_token" error_description="${description}"` },
    ),
  };
}

/**
 * `jwt`: what API Gateway's JWT authorizer checks, in its order: a `kid` the JWKS holds, the
 * signature (RS256), `iss`, `aud` (or `client_id` when there is no `aud`), `exp`, `nbf`, `iat`.
 */
export function jwtAuthorizer(authority: JwtAuthority): Authorizer {
  const keys = createLocalJWKSet(authority.jwks);
  return {
    mode: 'jwt',
    async authorize(request) {
      const header = request.headers.authorization;
      const token = typeof header === 'string' ? TOKEN.exec(header)?.[1] : undefined;
      if (!token) return unauthorized('the token is missing or malformed');
      let payload: JWTPayload;
      try {
        if (!decodeProtectedHeader(token).kid) return unauthorized('the token has no kid');
        ({ payload } = await jwtVerify(token, keys, { issuer: authority.issuer(), algorithms: ['RS256'] }));
      } catch (error) {
        return unauthorized(reasonOf(error));
      }
      const audience = payload.aud ?? payload.client_id;
      if (!([] as unknown[]).concat(audience).includes(authority.audience)) {
        return unauthorized('the token does not have a valid audience');
      }
      if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000) {
        return unauthorized('the token was issued in the future');
      }
      return { ok: true, authorizer: { jwt: { claims: claimStrings(payload), scopes: scopesOf(payload) } } };
    },
  };
}

function reasonOf(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is not valid`;
  if (error instanceof errors.JWKSNoMatchingKey) return 'no key of the issuer matches the token';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  return 'the token is not valid';
}

/** AWS passes claims on as strings: numbers and booleans printed, arrays as `[a b]`. */
function claimStrings(payload: JWTPayload): Record<string, string> {
  const flat = (value: unknown): string =>
    Array.isArray(value)
      ? `[${value.map(flat).join(' ')}]`
      : value !== null && typeof value === 'object'
        ? JSON.stringify(value)
        : String(value);
  return Object.fromEntries(Object.entries(payload).map(([name, value]) => [name, flat(value)]));
}

function scopesOf(payload: JWTPayload): string[] | null {
  const raw = payload.scope ?? payload.scp;
  const scopes = Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(' ') : [];
  const present = scopes.filter(Boolean);
  return present.length ? present : null;
}

/** The auth settings of `npm start`: `LOCAL_AUTH`, `LOCAL_IAM_USERS`, `LOCAL_JWT_AUDIENCE`. */
export function localAuthFromEnv(env: NodeJS.ProcessEnv): LocalAuthOptions {
  const mode = z.enum(['none', 'iam', 'jwt']).parse(env.LOCAL_AUTH || 'none');
  const users = env.LOCAL_IAM_USERS ? iamUsersSchema.parse(JSON.parse(env.LOCAL_IAM_USERS)) : undefined;
  const audience = env.LOCAL_JWT_AUDIENCE || undefined;
  return { mode, ...(users ? { users } : {}), ...(audience ? { audience } : {}) };
}
