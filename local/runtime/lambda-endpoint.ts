import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type FunctionHost, FunctionNotFoundError } from './functions.js';

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

/**
 * A Lambda Invoke-compatible endpoint (`AWS_ENDPOINT_URL_LAMBDA`), so `@aws-sdk/client-lambda`
 * `InvokeCommand` reaches locally registered functions unchanged. Supports RequestResponse, Event
 * and DryRun invocation types; a failed function answers 200 with `X-Amz-Function-Error`, as AWS does.
 */
export function createLambdaEndpoint(host: FunctionHost, log: (e: Record<string, unknown>) => void): Server {
  return createServer((request, response) => {
    void handle(request, response).catch((error: unknown) => {
      log({ level: 'ERROR', message: 'local Lambda endpoint failed', error: String(error) });
      if (!response.headersSent) sendError(response, 500, 'ServiceException', 'Internal error');
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const match = INVOKE_PATH.exec(new URL(request.url ?? '/', 'http://localhost').pathname);
    if (request.method !== 'POST' || !match) {
      sendError(response, 404, 'UnknownOperationException', 'Only Invoke is served locally');
      return;
    }
    const name = functionName(decodeURIComponent(match[1] as string));
    if (!host.has(name)) {
      sendError(response, 404, 'ResourceNotFoundException', `Function not found: ${host.arn(name)}`);
      return;
    }
    const raw = await readAll(request);
    let event: unknown;
    try {
      event = raw.length ? JSON.parse(raw.toString('utf8')) : {};
    } catch {
      sendError(response, 400, 'InvalidRequestContentException', 'Could not parse request body into json');
      return;
    }
    const type = String(request.headers['x-amz-invocation-type'] ?? 'RequestResponse');
    if (type === 'DryRun') {
      response.writeHead(204).end();
      return;
    }
    if (type === 'Event') {
      void host
        .invoke(name, event)
        .catch((error: unknown) => log({ level: 'ERROR', message: 'async invoke failed', error: String(error) }));
      response.writeHead(202).end();
      return;
    }
    try {
      const outcome = await host.invoke(name, event);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'x-amz-executed-version': '$LATEST',
      };
      if (!outcome.ok) headers['x-amz-function-error'] = 'Unhandled';
      response.writeHead(200, headers);
      response.end(JSON.stringify(outcome.ok ? (outcome.result ?? null) : outcome.error));
    } catch (error) {
      if (error instanceof FunctionNotFoundError) {
        sendError(response, 404, 'ResourceNotFoundException', error.message);
        return;
      }
      throw error;
    }
  }
}

/** Accepts a bare name, a partial `function:NAME` or a full ARN, optionally with a qualifier. */
function functionName(identifier: string): string {
  const parts = identifier.split(':');
  const at = parts.indexOf('function');
  return at >= 0 ? (parts[at + 1] as string) : (parts[0] as string);
}

function sendError(response: ServerResponse, status: number, type: string, message: string): void {
  response.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
  response.end(JSON.stringify({ Type: 'User', message }));
}

function readAll(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}
