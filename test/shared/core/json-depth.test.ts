import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_JSON_DEPTH,
  getMaxJsonDepth,
  nestsDeeperThan,
  setMaxJsonDepth,
} from '../../../shared/core/json-depth.js';
import { appendRowsSchema, parseOrThrow, submitTasksSchema } from '../../../shared/core/schemas.js';

const nested = (depth: number): unknown => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);

afterEach(() => setMaxJsonDepth(DEFAULT_MAX_JSON_DEPTH));

describe('JSON depth', () => {
  it('counts containers inside containers, the value itself first, scalars not at all', () => {
    expect(nestsDeeperThan(1, 0)).toBe(false);
    expect(nestsDeeperThan({}, 0)).toBe(true);
    expect(nestsDeeperThan({ a: [1, { b: 'x' }] }, 3)).toBe(false);
    expect(nestsDeeperThan({ a: [1, { b: [] }] }, 3)).toBe(true);
    expect(nestsDeeperThan(nested(64), 64)).toBe(false);
    expect(nestsDeeperThan(nested(65), 64)).toBe(true);
    // A wide value is not a deep one.
    expect(
      nestsDeeperThan(
        Array.from({ length: 100_000 }, () => ({ a: [1] })),
        3,
      ),
    ).toBe(false);
  });

  it('answers for any depth without recursion', () => {
    expect(nestsDeeperThan(nested(1_000_000), 64)).toBe(true);
  });

  it('names only the first row too deep, however many there are', () => {
    const rows = [1, ...Array.from({ length: 10_000 }, () => nested(65))];
    expect(() => parseOrThrow(appendRowsSchema, { rows }, 'Rows')).toThrow(
      expect.objectContaining({ details: [{ path: 'rows[1]', message: 'must nest at most 64 levels deep' }] }),
    );
  });

  it('holds the schemas to the configured limit, refusing a bad one', () => {
    const body = (depth: number) => ({ type: 't', tasks: [{ processor: 'p', input: nested(depth) }] });
    expect(() => parseOrThrow(submitTasksSchema, body(64), 'Job')).not.toThrow();
    setMaxJsonDepth(3);
    expect(getMaxJsonDepth()).toBe(3);
    expect(() => parseOrThrow(submitTasksSchema, body(3), 'Job')).not.toThrow();
    expect(() => parseOrThrow(submitTasksSchema, body(4), 'Job')).toThrow(
      expect.objectContaining({
        code: 'VALIDATION_FAILED',
        details: [{ path: 'tasks[0].input', message: 'must nest at most 3 levels deep' }],
      }),
    );
    for (const bad of [0, -1, 1.5, Number.NaN, 1001]) expect(() => setMaxJsonDepth(bad)).toThrow(/MAX_JSON_DEPTH/);
    expect(getMaxJsonDepth()).toBe(3);
  });
});
