import { createHmac } from 'node:crypto';

/**
 * How the worker signs a request to an HTTP processor (API.md, "Processor contract"), in one place
 * so the invoker that signs and the processor kit that verifies cannot drift apart.
 */
export const TIMESTAMP_HEADER = 'x-jobs-timestamp';
export const SIGNATURE_HEADER = 'x-jobs-signature';

/**
 * `sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))`, with `timestamp` in whole seconds
 * since the Unix epoch. `body` may be the received bytes: the MAC is over exactly what was sent.
 */
export function sign(secret: string, timestamp: string, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}
