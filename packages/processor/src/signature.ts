import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SIGNATURE_HEADER, sign, TIMESTAMP_HEADER } from '../../../shared/core/signature.js';

/** How far a request's timestamp may be from this clock, by default: past it, a captured request is not replayable. */
export const DEFAULT_TOLERANCE_SECONDS = 300;
/** The largest body read by default: a Lambda-sized request (6 MiB). */
export const DEFAULT_MAX_BYTES = 6 * 1024 * 1024;

export interface VerifyOptions {
  /** The signing secret; several while a secret is being rotated (any one may match). */
  secret: string | readonly string[];
  /** Default 300. */
  toleranceSeconds?: number;
  /** The clock, in milliseconds since the epoch (tests). */
  now?: () => number;
}

export type Verification =
  | { ok: true }
  | { ok: false; reason: 'no timestamp' | 'stale timestamp' | 'no signature' | 'bad signature' };

/**
 * Checks the worker's signature of an HTTP processor request: `X-Jobs-Signature` must be
 * `sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))` over the exact bytes received, compared
 * in constant time, and `X-Jobs-Timestamp` (whole seconds) within the tolerance of this clock.
 */
export function verifySignature(
  request: { timestamp: string | null | undefined; signature: string | null | undefined; body: string | Uint8Array },
  options: VerifyOptions,
): Verification {
  const { timestamp, signature, body } = request;
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'no timestamp' };
  const now = (options.now ?? Date.now)() / 1000;
  if (Math.abs(now - Number(timestamp)) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) {
    return { ok: false, reason: 'stale timestamp' };
  }
  if (typeof signature !== 'string' || signature === '') return { ok: false, reason: 'no signature' };
  const given = Buffer.from(signature);
  const secrets = typeof options.secret === 'string' ? [options.secret] : options.secret;
  let matched = false;
  for (const secret of secrets) {
    const expected = Buffer.from(sign(secret, timestamp, body));
    // timingSafeEqual needs equal lengths; only a malformed header differs in length, which says nothing.
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  return matched ? { ok: true } : { ok: false, reason: 'bad signature' };
}

/** A request whose signature held, with its body; or why it is refused, with the HTTP status to answer. */
export type VerifiedRequest = { ok: true; body: string } | { ok: false; status: 401 | 413; reason: string };

export interface ReadOptions extends VerifyOptions {
  /** Bodies larger than this are refused with 413 (default 6 MiB). */
  maxBytes?: number;
}

function verified(
  timestamp: string | null | undefined,
  signature: string | null | undefined,
  body: Uint8Array,
  options: VerifyOptions,
): VerifiedRequest {
  const verdict = verifySignature({ timestamp, signature, body }, options);
  return verdict.ok
    ? { ok: true, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8') }
    : { ok: false, status: 401, reason: verdict.reason };
}

const tooLarge = (max: number): VerifiedRequest => ({ ok: false, status: 413, reason: `body over ${max} bytes` });
const one = (value: string | string[] | undefined) => (typeof value === 'string' ? value : undefined);

/** Reads and verifies a request on a Node `http` server (the body must not have been read yet). */
export function verifyNodeRequest(request: IncomingMessage, options: ReadOptions): Promise<VerifiedRequest> {
  const max = options.maxBytes ?? DEFAULT_MAX_BYTES;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => {
      if (size > max) return resolve(tooLarge(max));
      const { headers } = request;
      resolve(verified(one(headers[TIMESTAMP_HEADER]), one(headers[SIGNATURE_HEADER]), Buffer.concat(chunks), options));
    });
  });
}

/** Reads and verifies a fetch-style `Request` (Node's, Deno's, Bun's, a worker runtime's). */
export async function verifyFetchRequest(request: Request, options: ReadOptions): Promise<VerifiedRequest> {
  const max = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const declared = Number(request.headers.get('content-length'));
  if (declared > max) return tooLarge(max);
  // Read in pieces, so a body without a declared length is still never held past the limit.
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body?.getReader();
  for (;;) {
    const piece = await reader?.read();
    if (!piece || piece.done) break;
    size += piece.value.byteLength;
    if (size > max) {
      await reader?.cancel();
      return tooLarge(max);
    }
    chunks.push(piece.value);
  }
  const body = Buffer.concat(chunks);
  return verified(request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body, options);
}
