import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { NotFoundError } from '../../shared/core/errors.js';
import { type ApiEvent, DEFAULT_MAX_BODY_BYTES, httpErrors, jsonBody } from '../../shared/http/middleware.js';
import { json } from '../../shared/http/responses.js';

const logger = new Logger({ serviceName: 'jobs-api' });

type Route = (event: ApiEvent) => Promise<APIGatewayProxyStructuredResultV2>;

/** Route keys exactly as declared in shared/resources.ts (`api.routes`). */
const routes: Record<string, Route> = {
  'GET /v1/health': async () => json(200, { status: 'ok' }),
};

async function route(event: ApiEvent): Promise<APIGatewayProxyStructuredResultV2> {
  const handle = routes[event.routeKey];
  if (!handle) {
    throw new NotFoundError(`No route for ${event.requestContext.http.method} ${event.rawPath}`);
  }
  return handle(event);
}

export const handler = middy<ApiEvent, APIGatewayProxyStructuredResultV2>()
  .use(injectLambdaContext(logger))
  .use(httpErrors(logger))
  .use(jsonBody({ maxBytes: Number(process.env.MAX_BODY_BYTES ?? DEFAULT_MAX_BODY_BYTES) }))
  .handler(route);
