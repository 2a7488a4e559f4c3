import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as z from 'zod';
import {
  createDocument,
  type oas31,
  type ZodOpenApiOperationObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
} from 'zod-openapi';
import { ERROR_CODES, type ErrorCode } from '../../shared/core/errors.js';
import * as responses from '../../shared/core/responses.js';
import { appendRowsSchema, submitBatchSchema, submitTasksSchema } from '../../shared/core/schemas.js';
import { STATUS_OF } from '../../shared/http/responses.js';
import { resources } from '../../shared/resources.js';
import { apiCatalog, ERROR_MEANINGS, type RouteSpec } from './catalog.js';

/**
 * The OpenAPI 3.1 document of the API, generated from the route catalog with zod-openapi.
 * Build-time only: `npm run openapi` writes it to docs/openapi.json, which the API serves as is,
 * so the API's bundle carries neither this module nor the generator.
 */

export const OPENAPI_FILE = join(import.meta.dirname, '..', '..', 'docs', 'openapi.json');

/** Named schemas, so the document reads (and tools name types) as API.md does. */
const components = {
  JobView: responses.jobViewSchema,
  TaskJobView: responses.taskJobViewSchema,
  TaskJobSummary: responses.taskJobSummarySchema,
  BatchJobView: responses.batchJobViewSchema,
  JobSummary: responses.jobSummarySchema,
  TaskView: responses.taskViewSchema,
  TaskSummary: responses.taskSummarySchema,
  TaskError: responses.taskErrorSchema,
  Counts: responses.countsSchema,
  AttemptView: responses.attemptViewSchema,
  LateOutcome: responses.lateOutcomeSchema,
  BatchOutput: responses.batchOutputViewSchema,
  JobEvent: responses.jobEventSchema,
  RowView: responses.rowViewSchema,
  JobsPage: responses.jobsPageSchema,
  TasksPage: responses.tasksPageSchema,
  EventsPage: responses.eventsPageSchema,
  RowsPage: responses.rowsPageSchema,
  AppendReply: responses.appendReplySchema,
  Health: responses.healthSchema,
  Error: responses.errorSchema,
  ErrorCode: responses.errorCodeSchema,
  Time: responses.timeSchema,
  ErrorDetail: responses.errorDetailSchema,
  GatewayError: responses.gatewayErrorSchema,
  SubmitTasks: submitTasksSchema,
  SubmitBatch: submitBatchSchema,
  AppendRows: appendRowsSchema,
};

const json = (schema: z.ZodType) => ({ 'application/json': { schema } });

/** `Error`, its code narrowed to `codes`. */
function errorOf(codes: readonly ErrorCode[]): oas31.SchemaObject {
  return {
    allOf: [
      { $ref: '#/components/schemas/Error' },
      { type: 'object', properties: { error: { type: 'object', properties: { code: { enum: [...codes] } } } } },
    ],
  };
}

/** The contract errors of a route, one response per status, each naming its codes. */
function errorAnswers(codes: readonly ErrorCode[]): ZodOpenApiResponsesObject {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of ERROR_CODES.filter((code) => codes.includes(code))) {
    byStatus.set(STATUS_OF[code], [...(byStatus.get(STATUS_OF[code]) ?? []), code]);
  }
  const answers: ZodOpenApiResponsesObject = {};
  for (const [status, of] of byStatus) {
    answers[`${status}` as '400'] = {
      description: of.map((code) => `\`${code}\`: ${ERROR_MEANINGS[code]}.`).join(' '),
      content: { 'application/json': { schema: errorOf(of) } },
    };
  }
  return answers;
}

/**
 * Answers every route shares, as components: API Gateway's refusals of a request its authorizer did
 * not verify, ours of one it verified without an owner, and a bug's.
 */
const sharedAnswers: Record<'Unauthorized' | 'Forbidden' | 'Internal', ZodOpenApiResponseObject> = {
  Unauthorized: {
    description:
      'No valid token (JWT deployments: API Gateway’s own `{"message": "Unauthorized"}`), or `UNAUTHORIZED`: ' +
      `${ERROR_MEANINGS.UNAUTHORIZED}.`,
    content: {
      'application/json': {
        schema: { anyOf: [{ $ref: '#/components/schemas/GatewayError' }, errorOf(['UNAUTHORIZED'])] },
      },
    },
  },
  Forbidden: {
    description: 'No valid signature (IAM deployments): API Gateway’s own `{"message": "Forbidden"}`.',
    content: json(responses.gatewayErrorSchema),
  },
  Internal: errorAnswers(['INTERNAL'])['500'] as ZodOpenApiResponseObject,
};

const shared = (name: keyof typeof sharedAnswers) => ({ $ref: `#/components/responses/${name}` });

function operation(routeKey: string, spec: RouteSpec): ZodOpenApiOperationObject {
  const open = resources.api.publicRoutes.includes(routeKey);
  const answers: ZodOpenApiResponsesObject = {};
  for (const [status, answer] of Object.entries(spec.answers)) {
    answers[status as '200'] = {
      description: answer.description,
      ...(answer.body ? { content: json(answer.body) } : {}),
      ...(answer.headers
        ? {
            headers: Object.fromEntries(
              Object.entries(answer.headers).map(([name, description]) => [
                name,
                { description, schema: { type: 'string' } },
              ]),
            ),
          }
        : {}),
    };
  }
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    ...(spec.description ? { description: spec.description } : {}),
    tags: [spec.tag],
    ...(open ? { security: [] } : {}),
    ...(spec.path || spec.query || spec.headers
      ? {
          requestParams: {
            ...(spec.path ? { path: spec.path } : {}),
            ...(spec.query ? { query: spec.query } : {}),
            ...(spec.headers ? { header: spec.headers } : {}),
          },
        }
      : {}),
    ...(spec.body
      ? { requestBody: { required: true, description: spec.body.description, content: json(spec.body.schema) } }
      : {}),
    responses: {
      ...answers,
      ...errorAnswers(spec.errors),
      ...(open ? {} : { '401': shared('Unauthorized'), '403': shared('Forbidden') }),
      '500': shared('Internal'),
    },
  };
}

export function openApiDocument(): oas31.OpenAPIObject {
  const paths: Record<string, Record<string, ZodOpenApiOperationObject>> = {};
  for (const [routeKey, spec] of Object.entries(apiCatalog)) {
    const [method = '', path = ''] = routeKey.split(' ');
    paths[path] = { ...paths[path], [method.toLowerCase()]: operation(routeKey, spec) };
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Serverless jobs API',
      version: '1.0.0',
      description:
        'The public contract of the job manager (v1); docs/API.md explains it. Every non-2xx answer of the API ' +
        'itself has the body `{"error": {"code", "message", "details"?}}`. A path no route declares answers ' +
        '`404 NOT_FOUND`, a declared path asked with another method `405 METHOD_NOT_ALLOWED` with an `Allow` header.',
    },
    tags: [
      { name: 'jobs', description: 'Submit, read, follow and abort jobs of either kind.' },
      { name: 'batches', description: 'What only a batch takes: appended rows, release, row outcomes.' },
      { name: 'find', description: 'Search the caller’s jobs and tasks.' },
      { name: 'service', description: 'Health and this document.' },
    ],
    // One of the two, per deployment (`cdk.json` auth): IAM SigV4 signing or a JWT bearer token.
    security: [{ sigv4: [] }, { jwt: [] }],
    paths,
    components: {
      schemas: components,
      responses: sharedAnswers,
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          in: 'header',
          name: 'Authorization',
          description:
            'AWS Signature Version 4 (service `execute-api`) by an IAM principal: deployments with IAM auth.',
        },
        jwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'A JWT from the deployment’s issuer, for its audience: deployments with JWT auth.',
        },
      },
    },
  }) as oas31.OpenAPIObject;
}

// `npm run openapi`, which then has biome format the file as it formats every other.
if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(OPENAPI_FILE, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
  console.log(`wrote ${OPENAPI_FILE}`);
}
