import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import document from '../../docs/openapi.json' with { type: 'json' };
import { compileRoute } from '../../shared/http/routes.js';
import { resources } from '../../shared/resources.js';

/**
 * The committed OpenAPI document as a test oracle: which declared routes it leaves out, and whether
 * an answer the API gave is one the document allows (by route and status). test/support/api.ts
 * checks every answer the end-to-end suites get with it.
 */

export type OpenApiDocument = {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
};

/** Declared routes (`resources.api.routes`) the document has no operation for; `$default` is every other path. */
export function undocumentedRoutes(doc: OpenApiDocument, routeKeys: readonly string[] = resources.api.routes) {
  return routeKeys.filter((key) => {
    if (key === '$default') return false;
    const [method = '', path = ''] = key.split(' ');
    return doc.paths[path]?.[method.toLowerCase()] === undefined;
  });
}

/** Operations in the document that no declared route serves. */
export function undeclaredOperations(doc: OpenApiDocument, routeKeys: readonly string[] = resources.api.routes) {
  return Object.entries(doc.paths).flatMap(([path, operations]) =>
    Object.keys(operations)
      .map((method) => `${method.toUpperCase()} ${path}`)
      .filter((key) => !routeKeys.includes(key)),
  );
}

const ID = 'urn:serverless-jobs:openapi';
// Most literal segments first, as API Gateway picks among routes that match.
const routes = resources.api.routes
  .filter((key) => key !== '$default')
  .map(compileRoute)
  .sort((a, b) => b.literals - a.literals);

/** Checks answers against a document; validators are compiled once per route and status. */
export function answerChecker(doc: OpenApiDocument = document as unknown as OpenApiDocument) {
  // OpenAPI 3.1 schemas are JSON Schema 2020-12; the document's own keys (paths, info…) are not keywords.
  const ajv = new Ajv2020({ strictSchema: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema({ ...doc, $id: ID });
  const compiled = new Map<string, ValidateFunction | null>();
  const validator = (pointer: string) => {
    let validate = compiled.get(pointer);
    if (validate === undefined) {
      validate = ajv.getSchema(`${ID}#${pointer}`) ?? null;
      compiled.set(pointer, validate);
    }
    return validate;
  };
  const pointerSegment = (segment: string) => segment.replaceAll('~', '~0').replaceAll('/', '~1');

  /** Why the document does not allow this answer, or undefined when it does. */
  return function mismatch(method: string, rawPath: string, status: number, body: unknown): string | undefined {
    const route = routes.find((r) => r.pattern.test(rawPath) && r.method === method);
    if (!route) {
      // `$default`: the API's refusal of a path no route declares (404), or of a method (405).
      if (status < 400) return `${method} ${rawPath} answered ${status} but no declared route serves it`;
      const validate = validator('/components/schemas/Error');
      return validate?.(body) ? undefined : `not the contract's error: ${ajv.errorsText(validate?.errors)}`;
    }
    const [, path = ''] = route.routeKey.split(' ');
    const operation = doc.paths[path]?.[method.toLowerCase()];
    const answer = operation?.responses[String(status)];
    if (!answer) return `${route.routeKey} answered ${status}, which the document does not list`;
    const resolved = '$ref' in answer ? resolve(doc, answer.$ref as string) : answer;
    if (!resolved.content) return body === undefined ? undefined : `${route.routeKey} ${status} has no body documented`;
    if (body === undefined) return `${route.routeKey} ${status} answered no body`;
    const pointer =
      '$ref' in answer
        ? `${(answer.$ref as string).slice(1)}/content/application~1json/schema`
        : `/paths/${pointerSegment(path)}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema`;
    const validate = validator(pointer);
    if (!validate) return `no schema at ${pointer}`;
    return validate(body) ? undefined : `${route.routeKey} ${status}: ${ajv.errorsText(validate.errors)}`;
  };
}

function resolve(doc: OpenApiDocument, ref: string): { content?: Record<string, unknown> } {
  let node: unknown = doc;
  for (const key of ref.slice(2).split('/')) node = (node as Record<string, unknown>)[key];
  return node as { content?: Record<string, unknown> };
}
