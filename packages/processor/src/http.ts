import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe } from './errors.js';
import type { RowProcessor } from './rows.js';
import { type ReadOptions, type VerifiedRequest, verifyFetchRequest, verifyNodeRequest } from './signature.js';
import type { TaskProcessor } from './task.js';

interface Answer {
  status: number;
  body: unknown;
}

const refusal = (code: string, message: string) => ({ error: { code, message } });

/**
 * A processor's reply in the HTTP target's terms (API.md): 2xx with the result (or the chunk
 * reply) as the body; a final error is a 4xx; a retryable error and a crash are 5xx, which the
 * worker retries by the processor's policy.
 */
async function answer(
  processor: TaskProcessor | RowProcessor,
  request: VerifiedRequest,
  signal: AbortSignal,
): Promise<Answer> {
  // A 4xx is a final error to the worker: a request that fails the check is not retried.
  if (!request.ok) {
    return {
      status: request.status,
      body: refusal(request.status === 401 ? 'BAD_SIGNATURE' : 'TOO_LARGE', request.reason),
    };
  }
  let event: unknown;
  try {
    event = JSON.parse(request.body);
  } catch {
    return { status: 400, body: refusal('BAD_REQUEST', 'the body is not JSON') };
  }
  try {
    if (processor.kind === 'chunks') return { status: 200, body: await processor.process(event as never, { signal }) };
    const reply = await processor.process(event as never, { signal });
    if (reply.status === 'ok') return { status: 200, body: reply.result ?? null };
    const error = reply.error ?? {};
    return {
      status: error.retryable ? 503 : 422,
      body: refusal(error.code ?? 'ERROR', error.message ?? 'processor reported an error'),
    };
  } catch (thrown) {
    return { status: 500, body: refusal('CRASH', describe(thrown)) };
  }
}

/**
 * Serves a kit processor as an HTTP target on a Node `http` server:
 * `createServer(nodeListener(processor, { secret }))`. `ctx.signal` aborts when the worker hangs up.
 */
export function nodeListener(
  processor: TaskProcessor | RowProcessor,
  options: ReadOptions,
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const hungUp = new AbortController();
    response.on('close', () => {
      if (!response.writableFinished) hungUp.abort(new Error('the caller hung up'));
    });
    verifyNodeRequest(request, options)
      .then((verified) => answer(processor, verified, hungUp.signal))
      .catch((error: unknown) => ({ status: 400, body: refusal('BAD_REQUEST', describe(error)) }))
      .then(({ status, body }) => {
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
  };
}

/** Serves a kit processor as an HTTP target from a fetch-style handler (`(Request) => Response`). */
export function fetchHandler(
  processor: TaskProcessor | RowProcessor,
  options: ReadOptions,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const { status, body } = await answer(processor, await verifyFetchRequest(request, options), request.signal);
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  };
}
