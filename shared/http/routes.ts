/**
 * Route keys in API Gateway's syntax (`GET /v1/jobs/{id}`), matched as API Gateway matches them.
 * The local gateway routes with this, and the API function uses it to tell a wrong method on a
 * known path (405) from an unknown path (404), since AWS sends both to `$default`.
 */

export interface CompiledRoute {
  routeKey: string;
  method: string;
  pattern: RegExp;
  params: string[];
  /** API Gateway prefers the route with more literal segments (`/v1/jobs/search` over `/v1/jobs/{id}`). */
  literals: number;
}

/** `GET /v1/jobs/{id}` → a matcher on the raw (still percent-encoded) path; `{name+}` is greedy. */
export function compileRoute(routeKey: string): CompiledRoute {
  const [method = '', path = ''] = routeKey.split(' ');
  const params: string[] = [];
  const source = path
    .split('/')
    .map((segment) => {
      const match = /^\{([A-Za-z0-9_]+)(\+)?\}$/.exec(segment);
      if (!match) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      params.push(match[1] as string);
      return match[2] ? '(.+)' : '([^/]+)';
    })
    .join('/');
  const literals = path.split('/').length - params.length;
  return { routeKey, method, pattern: new RegExp(`^${source}$`), params, literals };
}

/** The methods the declared routes accept on this path, sorted; empty when no route has the path. */
export function allowedMethods(routeKeys: readonly string[], path: string): string[] {
  const methods = new Set<string>();
  for (const key of routeKeys) {
    if (key === '$default') continue;
    const route = compileRoute(key);
    if (route.pattern.test(path)) methods.add(route.method);
  }
  return [...methods].sort();
}
