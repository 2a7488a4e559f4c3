import * as z from 'zod';

/**
 * How deep a free-form JSON value (task input, meta, rows, context, a processor's result) may nest.
 * Past a few thousand levels, JSON.stringify, structuredClone and the SDK's marshalling overflow the
 * stack: such a value would be a 500, or a job stuck on a worker that can never copy it. 64 is far
 * beyond any real document. The wiring sets it from `MAX_JSON_DEPTH`; the core reads no environment.
 */
export const DEFAULT_MAX_JSON_DEPTH = 64;
/** The most `MAX_JSON_DEPTH` may be: well under where the recursive built-ins above give out. */
export const MAX_JSON_DEPTH_CEILING = 1000;

let maxJsonDepth = DEFAULT_MAX_JSON_DEPTH;

export function setMaxJsonDepth(depth: number): void {
  if (!Number.isInteger(depth) || depth < 1 || depth > MAX_JSON_DEPTH_CEILING) {
    throw new Error(`MAX_JSON_DEPTH must be a whole number from 1 to ${MAX_JSON_DEPTH_CEILING}, not ${depth}`);
  }
  maxJsonDepth = depth;
}

export function getMaxJsonDepth(): number {
  return maxJsonDepth;
}

/**
 * Whether a value has arrays or objects nested more than `limit` inside each other (the value
 * itself counts as the first level). Walked with a stack of its own, so any depth is safe to ask
 * about; it stops at the first container past the limit.
 */
export function nestsDeeperThan(value: unknown, limit: number = maxJsonDepth): boolean {
  // Two parallel stacks rather than one of pairs: no allocation per container (100,000 rows walk in ~10 ms).
  const nodes: unknown[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop() as number;
    if (node === null || typeof node !== 'object') continue;
    if (depth > limit) return true;
    if (Array.isArray(node)) {
      for (const child of node) {
        if (child !== null && typeof child === 'object') {
          nodes.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      // JSON objects are plain: their enumerable keys are their own.
      for (const key in node) {
        const child = (node as Record<string, unknown>)[key];
        if (child !== null && typeof child === 'object') {
          nodes.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return false;
}

export function depthMessage(): string {
  return `must nest at most ${maxJsonDepth} levels deep`;
}

/**
 * A free-form JSON value held to the depth limit. The check aborts the value's later checks, so
 * none of them (a size check's JSON.stringify) ever sees a value nested too deep.
 */
export function shallow<T extends z.ZodType>(schema: T) {
  return schema.refine((value) => !nestsDeeperThan(value), { error: depthMessage, abort: true });
}

/** Any JSON value, within the depth limit. */
export const jsonValue = shallow(z.unknown());

/**
 * An array whose members are each a free-form value held to the depth limit (batch rows). One walk
 * over the whole array, not a check per member, and only the first member too deep is named: a
 * body of 100,000 such rows is one detail, not 100,000.
 */
export function shallowMembers<T extends z.ZodArray<z.ZodUnknown>>(schema: T) {
  return schema.check((ctx) => {
    if (!nestsDeeperThan(ctx.value, maxJsonDepth + 1)) return;
    const index = ctx.value.findIndex((member) => nestsDeeperThan(member));
    ctx.issues.push({
      code: 'custom',
      input: ctx.value[index],
      path: [index],
      message: depthMessage(),
      continue: false,
    });
  });
}
