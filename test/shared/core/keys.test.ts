import { describe, expect, it } from 'vitest';
import { isPayloadOf, payloadPrefix } from '../../../shared/core/keys.js';

/** Which references the payload store follows for a job (no S3 here: the rule is a pure function). */
describe('a payload reference', () => {
  it('is followed inside its own job’s prefix', () => {
    expect(isPayloadOf(`${payloadPrefix('job-1')}abc/0/input.json`, 'job-1')).toBe(true);
  });

  it('is not followed into another job’s payloads, even one whose id starts with this one’s', () => {
    expect(isPayloadOf(`${payloadPrefix('job-2')}0/input.json`, 'job-1')).toBe(false);
    expect(isPayloadOf('payloads/job-10/0/input.json', 'job-1')).toBe(false);
  });

  it('is not followed out of the prefix, nor to keys elsewhere in the bucket', () => {
    expect(isPayloadOf('payloads/job-1/../job-2/0/input.json', 'job-1')).toBe(false);
    expect(isPayloadOf('outputs/job-1/results.jsonl', 'job-1')).toBe(false);
    expect(isPayloadOf('/payloads/job-1/0/input.json', 'job-1')).toBe(false);
    expect(isPayloadOf('', 'job-1')).toBe(false);
  });
});
