import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { type WiringParts, wiring } from '../../shared/aws/wiring.js';
import { MethodNotAllowedError, NotFoundError } from '../../shared/core/errors.js';
import { type ApiEvent, DEFAULT_MAX_BODY_BYTES, httpErrors, jsonBody } from '../../shared/http/middleware.js';
import { allowedMethods } from '../../shared/http/routes.js';
import { engineLog } from '../../shared/lambda/handlers.js';
import { resources } from '../../shared/resources.js';
import { apiRoutes } from './routes.js';

const logger = new Logger({ serviceName: 'jobs-api' });

const log = engineLog(logger);

/**
 * Only the API signs cursors, so only its bundle holds the Secrets Manager client that reads their
 * key (Powertools caches it for five minutes). Imported, not loaded on first use: a dynamic import
 * is wrapped whole into the one-file bundle, every command of the client with it (twice the bytes).
 */
const parts: WiringParts = { secret: (arn) => getSecret(arn, { maxAge: 300 }) };

const routes = apiRoutes(() => wiring('api', log, parts).jobs);

/** No route of ours: 405 on a declared path (AWS sends a wrong method to `$default` too), else 404. */
function refuseUnrouted(event: ApiEvent): never {
  const { method } = event.requestContext.http;
  const allow = allowedMethods(resources.api.routes, event.rawPath);
  if (allow.length) throw new MethodNotAllowedError(method, event.rawPath, allow);
  throw new NotFoundError(`No route for ${method} ${event.rawPath}`);
}

async function route(event: ApiEvent): Promise<APIGatewayProxyStructuredResultV2> {
  const handle = routes[event.routeKey];
  if (!handle) refuseUnrouted(event);
  return handle(event);
}

export const handler = middy<ApiEvent, APIGatewayProxyStructuredResultV2>()
  .use(injectLambdaContext(logger))
  .use(httpErrors(logger))
  // Before the body is looked at: a wrong path or method is a 404 or 405 whatever it carries.
  .use({ before: ({ event }) => void (routes[event.routeKey] ?? refuseUnrouted(event)) })
  .use(jsonBody({ maxBytes: Number(process.env.MAX_BODY_BYTES ?? DEFAULT_MAX_BODY_BYTES) }))
  .handler(route);
