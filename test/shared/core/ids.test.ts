import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, requestHash } from '../../../shared/core/ids.js';

/** The recursive form request hashes were first made with: stored jobs' hashes depend on it. */
function recursiveCanonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(recursiveCanonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${recursiveCanonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

describe('canonical JSON', () => {
  it('writes exactly what the recursive form wrote, so existing request hashes still match', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(value)).toBe(recursiveCanonicalJson(value));
      }),
      { numRuns: 500 },
    );
    const withUndefined = { b: [1, undefined, { d: undefined, c: 'x' }], a: null, e: undefined };
    expect(canonicalJson(withUndefined)).toBe(recursiveCanonicalJson(withUndefined));
    expect(canonicalJson(withUndefined)).toBe('{"a":null,"b":[1,null,{"c":"x"}]}');
  });

  it('hashes a value nested 100,000 deep without overflowing the stack', () => {
    const depth = 100_000;
    const value = JSON.parse(`${'[{"k":'.repeat(depth)}1${'}]'.repeat(depth)}`);
    expect(() => recursiveCanonicalJson(value)).toThrow(RangeError);
    expect(canonicalJson(value)).toHaveLength(depth * 8 + 1);
    expect(requestHash(value)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
