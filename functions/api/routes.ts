import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
// As `npm run openapi` generated it from the catalog: the API serves it without the generator.
import openApiDocument from '../../docs/openapi.json' with { type: 'json' };
import { idempotencyKeyOf, type Jobs } from '../../shared/core/jobs.js';
import { appendRowsSchema, parseOrThrow } from '../../shared/core/schemas.js';
import { searchJobsQuerySchema, searchTasksQuerySchema } from '../../shared/core/search.js';
import { callerOf, callerPolicyFromEnv } from '../../shared/http/callers.js';
import type { ApiEvent } from '../../shared/http/middleware.js';
import { json } from '../../shared/http/responses.js';
import { eventsQuery, headerKey, jobId, noQuery, query, readQuery, rowsQuery } from './requests.js';

export type Route = (event: ApiEvent) => Promise<APIGatewayProxyStructuredResultV2>;

/**
 * The API's routes, keyed exactly as declared in shared/resources.ts (`api.routes`): each parses
 * its query and body, calls one use case of `api()` (the wiring, built on first use) and replies.
 */
export function apiRoutes(api: () => Jobs): Record<string, Route> {
  const policy = callerPolicyFromEnv();
  /** Who is asking, as API Gateway's authorizer verified it. */
  const caller = (event: ApiEvent) => callerOf(event, policy);
  return {
    'GET /v1/health': async () => json(200, { status: 'ok' }),
    'HEAD /v1/health': async () => ({
      statusCode: 200,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    }),
    'GET /v1/openapi.json': async () => json(200, openApiDocument, { 'cache-control': 'public, max-age=300' }),
    'POST /v1/jobs': async (event) => {
      query(noQuery, event);
      const [jobs, who] = [api(), caller(event)];
      const { job, created } = await jobs.submit(event.json, who.owner, headerKey(event));
      return json(created ? 202 : 200, await jobs.view(job, who, { upload: true }), { location: `/v1/jobs/${job.id}` });
    },
    'GET /v1/jobs': async (event) => {
      const search = query(searchJobsQuerySchema, event);
      return json(200, await api().search(caller(event), search));
    },
    'GET /v1/tasks': async (event) => {
      const search = query(searchTasksQuerySchema, event);
      return json(200, await api().searchTasks(caller(event), search));
    },
    'GET /v1/jobs/{id}/events': async (event) => {
      const { cursor } = query(eventsQuery, event);
      return json(200, await api().events(jobId(event), caller(event), cursor));
    },
    'GET /v1/jobs/{id}': async (event) => {
      const { wait = 0 } = query(readQuery, event);
      const [who, jobs] = [caller(event), api()];
      return json(200, await jobs.view(await jobs.read(jobId(event), who, { waitSeconds: wait }), who));
    },
    'POST /v1/jobs/{id}/abort': async (event) => {
      query(noQuery, event);
      const [who, jobs] = [caller(event), api()];
      const { job, changed } = await jobs.abort(jobId(event), who);
      return json(changed ? 202 : 200, await jobs.view(job, who));
    },
    'POST /v1/jobs/{id}/rows': async (event) => {
      query(noQuery, event);
      // Wiring first: it sets the schemas' depth limit (MAX_JSON_DEPTH) the rows are held to.
      const jobs = api();
      const { rows, idempotencyKey } = parseOrThrow(appendRowsSchema, event.json, 'Rows');
      const key = idempotencyKeyOf(headerKey(event), idempotencyKey);
      return json(200, await jobs.append(jobId(event), caller(event), rows, key));
    },
    'GET /v1/jobs/{id}/rows': async (event) => {
      const page = query(rowsQuery, event);
      return json(200, await api().rows(jobId(event), caller(event), page));
    },
    'POST /v1/jobs/{id}/release': async (event) => {
      query(noQuery, event);
      const [who, jobs] = [caller(event), api()];
      return json(202, await jobs.view(await jobs.release(jobId(event), who), who));
    },
  };
}
