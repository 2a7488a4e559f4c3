import { afterEach, describe, expect, it } from 'vitest';
import { wiringFromEnv } from '../../../shared/aws/wiring.js';
import { DEFAULT_MAX_JSON_DEPTH, getMaxJsonDepth, setMaxJsonDepth } from '../../../shared/core/json-depth.js';

/** Enough environment for the wiring to build (it sends nothing until a use case runs). */
const base = {
  TABLE_JOBS: 'jobs',
  BUCKET_DATA: 'data',
  QUEUE_URL_WORK: 'http://127.0.0.1:1/work',
  AWS_REGION: 'us-east-1',
};

afterEach(() => setMaxJsonDepth(DEFAULT_MAX_JSON_DEPTH));

describe('wiring from the environment', () => {
  it('sets the JSON depth limit from MAX_JSON_DEPTH, 64 when unset, and fails the cold start on a bad one', () => {
    wiringFromEnv({ ...base, MAX_JSON_DEPTH: '8' });
    expect(getMaxJsonDepth()).toBe(8);
    wiringFromEnv(base);
    expect(getMaxJsonDepth()).toBe(64);
    for (const bad of ['0', '1001', 'deep', '2.5']) {
      expect(() => wiringFromEnv({ ...base, MAX_JSON_DEPTH: bad })).toThrow(/MAX_JSON_DEPTH/);
    }
  });
});
