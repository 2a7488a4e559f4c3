import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import * as z from 'zod';
import { wiring } from '../../shared/aws/wiring.js';
import { ROW_STATUSES } from '../../shared/core/batches/model.js';
import { MethodNotAllowedError, NotFoundError, ValidationError } from '../../shared/core/errors.js';
import { batchJobEvents, taskJobEvents } from '../../shared/core/events.js';
import { idempotencyKeyOf } from '../../shared/core/jobs.js';
import { isTerminal } from '../../shared/core/model.js';
import type { Caller } from '../../shared/core/owners.js';
import type { AnyJob } from '../../shared/core/ports.js';
import { appendRowsSchema, idempotencyKeySchema, parseOrThrow } from '../../shared/core/schemas.js';
import { searchJobsQuerySchema, searchTasksQuerySchema } from '../../shared/core/search.js';
import { shownTo, toJobSummary, toJobView, toTaskSummary } from '../../shared/core/view.js';
import { callerOf, callerPolicyFromEnv } from '../../shared/http/callers.js';
import { type ApiEvent, DEFAULT_MAX_BODY_BYTES, httpErrors, jsonBody } from '../../shared/http/middleware.js';
import { json } from '../../shared/http/responses.js';
import { allowedMethods } from '../../shared/http/routes.js';
import { engineLog } from '../../shared/lambda/handlers.js';
import { resources } from '../../shared/resources.js';

const logger = new Logger({ serviceName: 'jobs-api' });

const log = engineLog(logger);

type Route = (event: ApiEvent) => Promise<APIGatewayProxyStructuredResultV2>;

const callerPolicy = callerPolicyFromEnv();

/** Who is asking, as API Gateway's authorizer verified it. */
function caller(event: ApiEvent): Caller {
  return callerOf(event, callerPolicy);
}

/** Whose jobs a search reads: the caller's own, or (admins only) the owner it names. */
function searchOwner(who: Caller, named: string | undefined): string {
  if (named === undefined || named === who.owner) return who.owner;
  if (!who.admin) {
    throw new ValidationError('Only an admin may search the jobs of another owner', [
      { path: 'owner', message: 'leave it out to search your own jobs' },
    ]);
  }
  return named;
}

const noQuery = z.strictObject({});
const readQuery = z.strictObject({ wait: z.coerce.number().min(0).max(20).optional() });
const eventsQuery = z.strictObject({ cursor: z.string().min(1).max(512).optional() });
const EVENTS_PAGE = 100;

function cursors() {
  return wiring('api', log).finder.cursors;
}

/** Where a page of events goes on: this index in the job's events. */
const eventsCursorSchema = z.strictObject({ e: z.number().int().min(0) });

async function eventsCursor(cursor: string, id: string): Promise<number> {
  return (await cursors().open(cursor, `events|${id}`, eventsCursorSchema)).e;
}

const rowsQuery = z.strictObject({
  status: z.enum(ROW_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().min(1).max(512).optional(),
});

/** Ids we hand out are short and plain; anything else cannot name a job. */
const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function jobId(event: ApiEvent): string {
  const id = event.pathParameters?.id;
  if (!id || !JOB_ID.test(id)) throw new NotFoundError(`No job ${id?.slice(0, 128) ?? ''}`);
  return id;
}

/** A job as API.md shows it, whichever its kind. */
async function view(job: AnyJob, who: Caller, options: { upload?: boolean } = {}) {
  const { batches, payloads } = wiring('api', log);
  return shownTo(who, job.kind === 'batch' ? await batches.view(job, options) : await toJobView(job, payloads));
}

/** Done waiting: terminal, and for a batch, its outputs assembled. */
function settled(job: AnyJob): boolean {
  return isTerminal(job.status) && (job.kind !== 'batch' || job.batch.outputs !== undefined);
}

/** Long poll: re-read with growing pauses until the job is settled or the wait is over. */
async function readUntilTerminal(id: string, who: Caller, waitSeconds: number) {
  const { jobs } = wiring('api', log);
  const until = Date.now() + waitSeconds * 1000;
  let pause = 100;
  for (;;) {
    const job = await jobs.read(id, who);
    if (settled(job) || Date.now() + pause > until) return job;
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 1000);
  }
}

/** The `Idempotency-Key` header, checked like the body field it stands for. */
function headerKey(event: ApiEvent): string | undefined {
  const header = event.headers['idempotency-key'];
  return header === undefined ? undefined : parseOrThrow(idempotencyKeySchema, header, 'Idempotency-Key header');
}

/** Route keys exactly as declared in shared/resources.ts (`api.routes`). */
const routes: Record<string, Route> = {
  'GET /v1/health': async () => json(200, { status: 'ok' }),
  'HEAD /v1/health': async () => ({ statusCode: 200, headers: { 'content-type': 'application/json; charset=utf-8' } }),

  'POST /v1/jobs': async (event) => {
    parseOrThrow(noQuery, event.queryStringParameters ?? {}, 'Query');
    const { jobs } = wiring('api', log);
    const who = caller(event);
    const { job, created } = await jobs.submit(event.json, who.owner, headerKey(event));
    return json(created ? 202 : 200, await view(job, who, { upload: true }), { location: `/v1/jobs/${job.id}` });
  },

  'GET /v1/jobs': async (event) => {
    const query = parseOrThrow(searchJobsQuerySchema, event.queryStringParameters ?? {}, 'Query');
    const { finder, batches } = wiring('api', log);
    const who = caller(event);
    const page = await finder.jobs(searchOwner(who, query.owner), query);
    return json(200, {
      items: await Promise.all(
        page.items.map(async (job) => shownTo(who, job.kind === 'batch' ? await batches.view(job) : toJobSummary(job))),
      ),
      nextCursor: page.nextCursor,
    });
  },

  'GET /v1/tasks': async (event) => {
    const query = parseOrThrow(searchTasksQuerySchema, event.queryStringParameters ?? {}, 'Query');
    const page = await wiring('api', log).finder.tasks(searchOwner(caller(event), query.owner), query);
    return json(200, {
      items: page.items.map(({ jobId, jobType, task }) => toTaskSummary(jobId, jobType, task)),
      nextCursor: page.nextCursor,
    });
  },

  'GET /v1/jobs/{id}/events': async (event) => {
    const { cursor } = parseOrThrow(eventsQuery, event.queryStringParameters ?? {}, 'Query');
    const { jobs, batches } = wiring('api', log);
    const job = await jobs.read(jobId(event), caller(event));
    const events = job.kind === 'batch' ? batchJobEvents(job, await batches.tallies(job.id)) : taskJobEvents(job);
    const from = cursor ? await eventsCursor(cursor, job.id) : 0;
    const items = events.slice(from, from + EVENTS_PAGE);
    const next = from + EVENTS_PAGE < events.length ? from + EVENTS_PAGE : null;
    return json(200, {
      items,
      nextCursor: next === null ? null : await cursors().seal({ e: next }, `events|${job.id}`),
    });
  },

  'GET /v1/jobs/{id}': async (event) => {
    const { wait = 0 } = parseOrThrow(readQuery, event.queryStringParameters ?? {}, 'Query');
    const who = caller(event);
    const job = await readUntilTerminal(jobId(event), who, wait);
    return json(200, await view(job, who));
  },

  'POST /v1/jobs/{id}/abort': async (event) => {
    parseOrThrow(noQuery, event.queryStringParameters ?? {}, 'Query');
    const who = caller(event);
    const { job, changed } = await wiring('api', log).jobs.abort(jobId(event), who);
    return json(changed ? 202 : 200, await view(job, who));
  },

  'POST /v1/jobs/{id}/rows': async (event) => {
    parseOrThrow(noQuery, event.queryStringParameters ?? {}, 'Query');
    // Wiring first: it sets the schemas' depth limit (MAX_JSON_DEPTH) the rows are held to.
    const { batches } = wiring('api', log);
    const { rows, idempotencyKey } = parseOrThrow(appendRowsSchema, event.json, 'Rows');
    const key = idempotencyKeyOf(headerKey(event), idempotencyKey);
    return json(200, await batches.append(jobId(event), caller(event), rows, key));
  },

  'GET /v1/jobs/{id}/rows': async (event) => {
    const query = parseOrThrow(rowsQuery, event.queryStringParameters ?? {}, 'Query');
    const page = await wiring('api', log).batches.rows(jobId(event), caller(event), query);
    return json(200, {
      items: page.items.map(({ line, status, result, messages, error, outputs }) => ({
        line,
        status,
        result: result ?? null,
        messages: messages ?? [],
        error: error ?? null,
        ...(outputs ? { outputs } : {}),
      })),
      nextCursor: page.nextCursor,
    });
  },

  'POST /v1/jobs/{id}/release': async (event) => {
    parseOrThrow(noQuery, event.queryStringParameters ?? {}, 'Query');
    const who = caller(event);
    return json(202, await view(await wiring('api', log).batches.release(jobId(event), who), who));
  },
};

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
