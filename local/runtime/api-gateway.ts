import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type {
  APIGatewayEventRequestContextV2,
  APIGatewayProxyEventV2WithRequestContext,
  APIGatewayProxyStructuredResultV2,
} from 'aws-lambda';
import { currentMeter } from '../../shared/aws/meter.js';
import { JobsError, ValidationError } from '../../shared/core/errors.js';
import { errorResponse } from '../../shared/http/responses.js';
import { type CompiledRoute, compileRoute } from '../../shared/http/routes.js';
import type { Authorizer, AuthorizerContext } from './authorizers.js';
import type { FunctionHost } from './functions.js';

/** API Gateway refuses bodies over 10 MB before any function runs. */
export const API_GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface RouteMatch {
  routeKey: string;
  pathParameters?: Record<string, string>;
}

export class Router {
  private readonly routes: CompiledRoute[];
  private readonly hasDefault: boolean;

  constructor(routeKeys: string[]) {
    this.hasDefault = routeKeys.includes('$default');
    this.routes = routeKeys
      .filter((key) => key !== '$default')
      .map(compileRoute)
      .sort((a, b) => b.literals - a.literals);
  }

  /** Throws a ValidationError when a path parameter is not valid percent-encoding. */
  match(method: string, path: string): RouteMatch | undefined {
    for (const route of this.routes) {
      if (route.method !== method && route.method !== 'ANY') continue;
      const found = route.pattern.exec(path);
      if (!found) continue;
      if (route.params.length === 0) return { routeKey: route.routeKey };
      const pathParameters: Record<string, string> = {};
      for (const [i, name] of route.params.entries()) {
        const raw = found[i + 1] as string;
        try {
          pathParameters[name] = decodeURIComponent(raw);
        } catch {
          throw new ValidationError(`Path segment '${raw.slice(0, 128)}' is not valid percent-encoding`, [
            { path: name, message: 'malformed percent-escape' },
          ]);
        }
      }
      return { routeKey: route.routeKey, pathParameters };
    }
    return this.hasDefault ? { routeKey: '$default' } : undefined;
  }
}

const TEXT_TYPES = /^(text\/|application\/(json|xml|x-www-form-urlencoded|javascript)|[^;]*\+json|[^;]*\+xml)/i;

/** The event of an HTTP API route: with `authorizer` when the route has one, as in AWS. */
export type LocalApiEvent = APIGatewayProxyEventV2WithRequestContext<
  APIGatewayEventRequestContextV2 & { authorizer?: AuthorizerContext }
>;

/** Builds the payload-format 2.0 event exactly as API Gateway sends it to a Lambda integration. */
export function toEvent(
  request: IncomingMessage,
  body: Buffer,
  match: RouteMatch,
  sourceIp: string,
  authorizer?: AuthorizerContext,
): LocalApiEvent {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    if (name === 'cookie') {
      cookies.push(...String(value).split(/;\s*/));
      continue;
    }
    // API Gateway joins repeated headers with commas.
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = name in query ? `${query[name]},${value}` : value;
  }
  const now = new Date();
  const contentType = headers['content-type'] ?? '';
  // Bytes that are not valid UTF-8 cannot travel in a JSON string unchanged: send them base64 so
  // the function sees exactly what the client sent and can refuse it.
  const isText = body.length === 0 || (TEXT_TYPES.test(contentType) && isUtf8(body));
  const event: LocalApiEvent = {
    version: '2.0',
    routeKey: match.routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      // Only routes with an authorizer carry its context, as in AWS.
      ...(authorizer ? { authorizer } : {}),
      domainName: headers.host ?? 'localhost',
      domainPrefix: (headers.host ?? 'localhost').split('.')[0] as string,
      http: {
        method: request.method ?? 'GET',
        path: url.pathname,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: match.routeKey,
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: !isText,
  };
  if (cookies.length) event.cookies = cookies;
  if (Object.keys(query).length) event.queryStringParameters = query;
  if (match.pathParameters) event.pathParameters = match.pathParameters;
  if (body.length) event.body = isText ? body.toString('utf8') : body.toString('base64');
  return event;
}

/** Payload 2.0 lets a function return a bare value: API Gateway then answers 200 with it as JSON. */
export function normalizeResult(result: unknown): APIGatewayProxyStructuredResultV2 {
  if (result && typeof result === 'object' && 'statusCode' in result) {
    return result as APIGatewayProxyStructuredResultV2;
  }
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: typeof result === 'string' ? result : JSON.stringify(result ?? null),
  };
}

function writeResult(response: ServerResponse, result: APIGatewayProxyStructuredResultV2): void {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name] = String(value);
  if (result.cookies?.length) headers['set-cookie'] = result.cookies;
  const body = result.body ? Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8') : Buffer.alloc(0);
  headers['content-length'] = String(body.length);
  response.writeHead(result.statusCode ?? 200, headers);
  response.end(body);
}

export interface ApiGatewayOptions {
  host: FunctionHost;
  functionName: string;
  routes: string[];
  /** Routes the runtime answers itself, open in every mode (e.g. `/local/info`); undefined passes on. */
  localRoutes?: (
    method: string,
    path: string,
    body: Buffer,
  ) => Promise<APIGatewayProxyStructuredResultV2 | undefined> | APIGatewayProxyStructuredResultV2 | undefined;
  /** The authorizer of every route but `publicRoutes`; none: every request reaches the function as is. */
  authorizer?: Authorizer;
  publicRoutes?: readonly string[];
  log?: (entry: Record<string, unknown>) => void;
}

/** An HTTP server that plays API Gateway (HTTP API, payload format 2.0) in front of one function. */
export function createApiGateway(options: ApiGatewayOptions): Server {
  const router = new Router(options.routes);
  const log = options.log ?? ((entry) => console.error(JSON.stringify(entry)));
  return createServer((request, response) => {
    void handle(request, response).catch((error: unknown) => {
      log({ level: 'ERROR', message: 'local API gateway failed', error: String(error) });
      if (!response.headersSent) writeResult(response, errorResponse('INTERNAL', 'Internal error'));
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request, API_GATEWAY_MAX_BODY_BYTES);
    // HTTP APIs bill one request per started 512 KB.
    currentMeter()?.add('ApiGateway.request', {
      calls: 1,
      apiRequests: Math.max(
        1,
        Math.ceil((body === 'too-large' ? API_GATEWAY_MAX_BODY_BYTES : body.length) / (512 * 1024)),
      ),
    });
    if (body === 'too-large') {
      writeResult(response, errorResponse('PAYLOAD_TOO_LARGE', 'Request body exceeds 10 MB'));
      return;
    }
    const method = request.method ?? 'GET';
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const local = await options.localRoutes?.(method, path, body);
    if (local) {
      writeResult(response, local);
      return;
    }
    let match: RouteMatch | undefined;
    try {
      match = router.match(method, path);
    } catch (error) {
      if (!(error instanceof JobsError)) throw error;
      writeResult(response, errorResponse(error.code, error.message, error.details));
      return;
    }
    if (!match) {
      writeResult(response, errorResponse('NOT_FOUND', `No route for ${method} ${path}`));
      return;
    }
    // As in AWS, the matched route decides whether an authorizer runs; a refusal never reaches the function.
    let authorizer: AuthorizerContext | undefined;
    if (options.authorizer && !options.publicRoutes?.includes(match.routeKey)) {
      const outcome = await options.authorizer.authorize(request, body);
      if (!outcome.ok) {
        writeResult(response, outcome.result);
        return;
      }
      authorizer = outcome.authorizer;
    }
    const event = toEvent(request, body, match, request.socket.remoteAddress ?? '127.0.0.1', authorizer);
    const outcome = await options.host.invoke(options.functionName, event);
    if (!outcome.ok) {
      // A throwing handler is a bug: answer in the contract's shape, keep the cause in the log.
      log({
        level: 'ERROR',
        message: 'API function failed',
        requestId: event.requestContext.requestId,
        ...outcome.error,
      });
      writeResult(response, errorResponse('INTERNAL', 'Internal error'));
      return;
    }
    writeResult(response, normalizeResult(outcome.result));
  }
}

function readBody(request: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    request.on('end', () => resolve(tooLarge ? 'too-large' : Buffer.concat(chunks)));
    request.on('error', reject);
  });
}
