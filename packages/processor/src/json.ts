import { getMaxJsonDepth } from '../../../shared/core/json-depth.js';

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };

/**
 * `T` where it survives `JSON.stringify` as typed, `never` where it would not (a Date, a Map, a
 * function, a bigint). `unknown` passes (it is checked at run time, as everything is).
 */
export type Jsonable<T> = unknown extends T
  ? T
  : T extends JsonPrimitive | undefined
    ? T
    : // A run that returns nothing has no result (the reply's result is null).
      T extends void
      ? T
      : T extends bigint | symbol | ((...args: never[]) => unknown)
        ? never
        : T extends readonly (infer U)[]
          ? readonly Jsonable<U>[]
          : T extends object
            ? { [K in keyof T]: Jsonable<T[K]> }
            : never;

/**
 * Why `value` is not JSON the contract can carry (a bigint, a function, a symbol, nesting deeper
 * than the server's limit, which a cycle always does), with where; undefined when it is. Walked
 * with a stack of its own, so a cycle or a deep value cannot overflow the call stack.
 */
export function jsonProblem(value: unknown, at = 'result'): string | undefined {
  const limit = getMaxJsonDepth();
  const nodes: unknown[] = [value];
  const depths: number[] = [1];
  const paths: string[] = [at];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop() as number;
    const path = paths.pop() as string;
    const type = typeof node;
    if (type === 'bigint' || type === 'function' || type === 'symbol') return `${path} is a ${type}, which is not JSON`;
    if (node === null || type !== 'object') continue;
    // A value with toJSON (a Date) serializes as what that returns: JSON decides, not its fields.
    if (typeof (node as { toJSON?: unknown }).toJSON === 'function') continue;
    if (depth > limit) return `${path} nests deeper than ${limit} levels (or refers to itself)`;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        nodes.push(node[i]);
        depths.push(depth + 1);
        paths.push(`${path}[${i}]`);
      }
    } else {
      for (const key in node) {
        const child = (node as Record<string, unknown>)[key];
        // JSON.stringify leaves undefined members out: nothing to carry, nothing wrong.
        if (child === undefined) continue;
        nodes.push(child);
        depths.push(depth + 1);
        paths.push(`${path}.${key}`);
      }
    }
  }
  return undefined;
}

/**
 * Nothing when `R` is JSON; otherwise a member no options object has, named for the problem, so
 * a `run` returning a Date, a Map, a function or a bigint is a type error where it is defined.
 */
export type JsonResult<R> = [R] extends [Jsonable<R>]
  ? unknown
  : { 'run must return JSON: plain objects, arrays, strings, numbers, booleans, null': Jsonable<R> };
