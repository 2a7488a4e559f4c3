import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { pathToFileURL } from 'node:url';

/**
 * An HTTP processor that checks the job manager's signature before it trusts a request
 * (README, "Processors"): `X-Jobs-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))`
 * over the exact bytes received, with `X-Jobs-Timestamp` in whole seconds since the Unix epoch.
 *
 *   SIGNING_SECRET=… PORT=8080 npx tsx examples/http-receiver.ts
 */

/** How far a request's timestamp may be from this clock: past it, a captured request is not replayable. */
export const TOLERANCE_SECONDS = 300;
const MAX_BODY_BYTES = 6 * 1024 * 1024;

export type Verdict = { ok: true } | { ok: false; reason: string };

export function verify(secret: string, headers: IncomingHttpHeaders, body: Buffer, nowMs = Date.now()): Verdict {
  const timestamp = headers['x-jobs-timestamp'];
  const signature = headers['x-jobs-signature'];
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'no timestamp' };
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) return { ok: false, reason: 'stale timestamp' };
  if (typeof signature !== 'string') return { ok: false, reason: 'no signature' };
  const mac = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
  const expected = Buffer.from(`sha256=${mac}`);
  const given = Buffer.from(signature);
  // timingSafeEqual needs equal lengths; a length differs only for a malformed header, which says nothing.
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'bad signature' };
  return { ok: true };
}

/** What this processor does with a verified task (here: echoes its input). */
export type Handle = (request: { task: { input?: unknown } }) => Promise<unknown>;

export function createReceiver(secret: string, handle: Handle = async ({ task }) => ({ echoed: task.input })): Server {
  return createServer((req, res) => {
    const reply = (status: number, value: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', async () => {
      if (size > MAX_BODY_BYTES) return reply(413, { error: { code: 'TOO_LARGE', message: 'body too large' } });
      const body = Buffer.concat(chunks);
      const verdict = verify(secret, req.headers, body);
      // A 4xx is a final error to the job manager: a request that fails the check is not retried.
      if (!verdict.ok) return reply(401, { error: { code: 'BAD_SIGNATURE', message: verdict.reason } });
      try {
        return reply(200, await handle(JSON.parse(body.toString('utf8'))));
      } catch (error) {
        // 5xx: the job manager retries the task by its backoff.
        return reply(500, { error: { code: 'FAILED', message: (error as Error).message } });
      }
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secret = process.env.SIGNING_SECRET;
  if (!secret) throw new Error('Set SIGNING_SECRET to the secret the processor configuration names');
  const port = Number(process.env.PORT ?? 8080);
  createReceiver(secret).listen(port, '127.0.0.1', () => console.log(`receiver on http://127.0.0.1:${port}`));
}
