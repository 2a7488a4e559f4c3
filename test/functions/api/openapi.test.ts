import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { describe, expect, it } from 'vitest';
import { apiCatalog } from '../../../functions/api/catalog.js';
import { OPENAPI_FILE, openApiDocument } from '../../../functions/api/openapi.js';
import { apiRoutes } from '../../../functions/api/routes.js';
import { resources } from '../../../shared/resources.js';
import {
  answerChecker,
  type OpenApiDocument,
  undeclaredOperations,
  undocumentedRoutes,
} from '../../support/openapi.js';

const committed = () => JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as OpenApiDocument;

describe('the OpenAPI document', () => {
  it('is committed as the catalog generates it (run `npm run openapi` after changing a schema or route)', () => {
    expect(committed()).toEqual(openApiDocument());
  });

  it('documents every declared route, and nothing else', () => {
    expect(undocumentedRoutes(committed())).toEqual([]);
    expect(undeclaredOperations(committed())).toEqual([]);
    // The catalog and the handler's routes are the declaration's, one for one.
    const declared = resources.api.routes.filter((key) => key !== '$default').sort();
    expect(Object.keys(apiCatalog).sort()).toEqual(declared);
    expect(Object.keys(apiRoutes(() => ({}) as never)).sort()).toEqual(declared);
  });

  it('declares each path parameter of each operation (the validator below does not look)', () => {
    const doc = committed() as unknown as {
      paths: Record<string, Record<string, { parameters?: { in: string; name: string; required?: boolean }[] }>>;
    };
    for (const [path, operations] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
      for (const [method, operation] of Object.entries(operations)) {
        const declared = (operation.parameters ?? []).filter((p) => p.in === 'path');
        expect(
          declared.map((p) => [p.name, p.required]),
          `${method} ${path}`,
        ).toEqual(names.map((n) => [n, true]));
      }
    }
  });

  it('names a declared route the document leaves out', () => {
    const doc = structuredClone(committed());
    delete doc.paths['/v1/jobs/{id}/events'];
    delete doc.paths['/v1/jobs']?.post;
    expect(undocumentedRoutes(doc)).toEqual(['POST /v1/jobs', 'GET /v1/jobs/{id}/events']);
    expect(undeclaredOperations(doc, ['GET /v1/jobs'])).toContain('GET /v1/tasks');
  });

  it('is valid OpenAPI 3.1 to an independent validator', async () => {
    // swagger-parser dereferences in place: give it a copy.
    const api = await SwaggerParser.validate(structuredClone(committed()) as never);
    expect(api).toMatchObject({ openapi: '3.1.0' });
  });

  it('tells an answer it allows from one it does not', () => {
    const check = answerChecker();
    expect(check('GET', '/v1/health', 200, { status: 'ok' })).toBeUndefined();
    expect(check('HEAD', '/v1/health', 200, undefined)).toBeUndefined();
    // A field the document does not name, a status it does not list, a body where it has none.
    expect(check('GET', '/v1/health', 200, { status: 'ok', uptime: 1 })).toMatch(/additional properties/);
    expect(check('GET', '/v1/health', 418, { status: 'ok' })).toMatch(/does not list/);
    expect(check('HEAD', '/v1/health', 200, { status: 'ok' })).toMatch(/no body documented/);
    // Error codes are narrowed per route and status: an abort never answers UNKNOWN_PROCESSOR.
    const error = (code: string) => ({ error: { code, message: 'm' } });
    expect(check('POST', '/v1/jobs/j-1/abort', 409, error('INVALID_STATE'))).toBeUndefined();
    expect(check('POST', '/v1/jobs/j-1/abort', 400, error('UNKNOWN_PROCESSOR'))).toMatch(/allowed values/);
    expect(check('GET', '/v1/jobs', 403, { message: 'Forbidden' })).toBeUndefined();
    expect(check('GET', '/v1/jobs', 500, { message: 'Internal Server Error' })).toMatch(/must have required/);
    // Any other path is `$default`'s: the contract's error, never a 2xx.
    expect(check('GET', '/v2/anything', 404, error('NOT_FOUND'))).toBeUndefined();
    expect(check('GET', '/v2/anything', 200, {})).toMatch(/no declared route/);
    const page = { items: [{ at: '2026-01-01T00:00:00.000Z', level: 'info', type: 't', message: 'm' }] };
    expect(check('GET', '/v1/jobs/j-1/events', 200, { ...page, nextCursor: null })).toBeUndefined();
    expect(check('GET', '/v1/jobs/j-1/events', 200, page)).toMatch(/nextCursor/);
  });
});
