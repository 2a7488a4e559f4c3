import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { z } from 'zod';
import { wiring } from '../../shared/aws/wiring.js';
import { ROW_STATUSES } from '../../shared/core/batch.js';
import { idempotencyKeyOf } from '../../shared/core/engine.js';
import { NotFoundError } from '../../shared/core/errors.js';
import { batchJobEvents, taskJobEvents } from '../../shared/core/events.js';
import { isTerminal } from '../../shared/core/model.js';
import type { AnyJob } from '../../shared/core/ports.js';
import { appendRowsSchema, idempotencyKeySchema, parseOrThrow } from '../../shared/core/schemas.js';
import { searchJobsQuerySchema, searchTasksQuerySchema } from '../../shared/core/search.js';
import { toJobSummary, toJobView, toTaskSummary } from '../../shared/core/view.js';
import { type ApiEvent, DEFAULT_MAX_BODY_BYTES, httpErrors, jsonBody } from '../../shared/http/middleware.js';
import { json } from '../../shared/http/responses.js';
import { engineLog } from '../../shared/lambda/handlers.js';

const logger = new Logger({ serviceName: 'jobs-api' });

const log = engineLog(logger);

type Route = (event: ApiEvent) => Promise<APIGatewayProxyStructuredResultV2>;

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
async function view(job: AnyJob, options: { upload?: boolean } = {}) {
  const { batches, payloads } = wiring('api', log);
  return job.kind === 'batch' ? batches.view(job, options) : toJobView(job, payloads);
}

/** Done waiting: terminal, and for a batch, its outputs assembled. */
function settled(job: AnyJob): boolean {
  return isTerminal(job.status) && (job.kind !== 'batch' || job.batch.outputs !== undefined);
}

/** Long poll: re-read with growing pauses until the job is settled or the wait is over. */
async function readUntilTerminal(id: string, waitSeconds: number) {
  const { engine } = wiring('api', log);
  const until = Date.now() + waitSeconds * 1000;
  let pause = 100;
  for (;;) {
    const job = await engine.read(id);
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

  'POST /v1/jobs': async (event) => {
    parseOrThrow(noQuery, event.queryStringParameters ?? {}, 'Query');
    const { engine } = wiring('api', log);
    const { job, created } = await engine.submit(event.json, headerKey(event));
    return json(created ? 202 : 200, await view(job, { upload: true }), { location: `/v1/jobs/${job.id}` });
  },

  'GET /v1/jobs': async (event) => {
    const query = parseOrThrow(searchJobsQuerySchema, event.queryStringParameters ?? {}, 'Query');
    const { finder, batches } = wiring('api', log);
    const page = await finder.jobs(query);
    return json(200, {
      items: await Promise.all(page.items.map((job) => (job.kind === 'batch' ? batches.view(job) : toJobSummary(job)))),
      nextCursor: page.nextCursor,
    });
  },

  'GET /v1/tasks': async (event) => {
    const query = parseOrThrow(searchTasksQuerySchema, event.queryStringParameters ?? {}, 'Query');
    const page = await wiring('api', log).finder.tasks(query);
    return json(200, {
      items: page.items.map(({ jobId, jobType, task }) => toTaskSummary(jobId, jobType, task)),
      nextCursor: page.nextCursor,
    });
  },

  'GET /v1/jobs/{id}/events': async (event) => {
    const { cursor } = parseOrThrow(eventsQuery, event.queryStringParameters ?? {}, 'Query');
    const { engine, batches } = wiring('api', log);
    const job = await engine.read(jobId(event));
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
    const job = await readUntilTerminal(jobId(event), wait);
    return json(200, await view(job));
  },

  'POST /v1/jobs/{id}/abort': async (event) => {
    parseOrThrow(noQuery, event.queryStringParameters ?? {}, 'Query');
    const { engine, batches } = wiring('api', log);
    const id = jobId(event);
    const { job, changed } =
      (await engine.read(id)).kind === 'batch' ? await batches.abort(id) : await engine.abort(id);
    return json(changed ? 202 : 200, await view(job));
  },

  'POST /v1/jobs/{id}/rows': async (event) => {
    parseOrThrow(noQuery, event.queryStringParameters ?? {}, 'Query');
    // Wiring first: it sets the schemas' depth limit (MAX_JSON_DEPTH) the rows are held to.
    const { batches } = wiring('api', log);
    const { rows, idempotencyKey } = parseOrThrow(appendRowsSchema, event.json, 'Rows');
    const key = idempotencyKeyOf(headerKey(event), idempotencyKey);
    return json(200, await batches.append(jobId(event), rows, key));
  },

  'GET /v1/jobs/{id}/rows': async (event) => {
    const query = parseOrThrow(rowsQuery, event.queryStringParameters ?? {}, 'Query');
    const page = await wiring('api', log).batches.rows(jobId(event), query);
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
    return json(202, await view(await wiring('api', log).batches.release(jobId(event))));
  },
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
