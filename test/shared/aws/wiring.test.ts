import { afterEach, describe, expect, it } from 'vitest';
import { wiring, wiringFromEnv } from '../../../shared/aws/wiring.js';
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

/**
 * Every variable the wiring reads, and those the SDK clients it holds are built from, each with a
 * value other than the base's: listed here by hand, apart from the code's own list, so one the
 * cache key forgets fails here (AWS_REGION did: a warm function kept clients of the old region).
 */
const changes: Record<string, string> = {
  AWS_REGION: 'eu-west-1',
  AWS_ENDPOINT_URL: 'http://127.0.0.1:2',
  AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:3',
  TABLE_JOBS: 'jobs-2',
  BUCKET_DATA: 'data-2',
  QUEUE_URL_WORK: 'http://127.0.0.1:1/work-2',
  MAX_JSON_DEPTH: '8',
  INLINE_PAYLOAD_LIMIT_BYTES: '1000',
  JOB_RETENTION_DAYS: '3',
  JOB_RETENTION_DAYS_BY_TYPE: '{"report":2}',
  SEARCH_INDEX: 'off',
  PROCESSORS: '{"echo":{"target":{"type":"lambda","functionName":"echo"},"timeoutSeconds":5}}',
  LEASE_MARGIN_SECONDS: '20',
  CURSOR_KEY: 'another-key',
  CURSOR_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:cursor',
  BATCH_MAX_LINE_BYTES: '2048',
  BATCH_CSV_MAX_QUOTED_LINES: '5',
  BATCH_INPUT_BUCKETS: 'inputs-bucket',
  BATCH_INPUT_PREFIX: 'drop/',
  BATCH_INPUT_MAX_BYTES: '1000000',
  PLAN_CHUNKS_PER_STEP: '50',
  FINALIZE_CHUNKS_PER_STEP: '40',
};

describe('the wiring of a warm function', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });

  function setEnv(values: Record<string, string>) {
    for (const name of Object.keys(changes)) delete process.env[name];
    Object.assign(process.env, values);
  }

  it('is reused while the environment stays the same', () => {
    setEnv(base);
    expect(wiring('wiring-test-same')).toBe(wiring('wiring-test-same'));
  });

  it.each(Object.entries(changes))('is built afresh when %s changes', (name, value) => {
    setEnv(base);
    const before = wiring(`wiring-test-${name}`);
    setEnv({ ...base, [name]: value });
    expect(wiring(`wiring-test-${name}`)).not.toBe(before);
  });
});
