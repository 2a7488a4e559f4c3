import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_BATCH, MAX_BATCH_BYTES, sendBatches, sendDelay } from '../../../shared/aws/work-queue.js';

/** How the SQS adapter groups a send into requests (no SQS here: the grouping is a pure function). */
describe('grouping work messages into SendMessageBatch requests', () => {
  const sizes = (batches: string[][]) => batches.map((batch) => batch.length);

  it('sends nothing for no messages, and ten to a request otherwise, in order', () => {
    expect(sendBatches([])).toEqual([]);
    const bodies = Array.from({ length: 25 }, (_, i) => `{"n":${i}}`);
    const batches = sendBatches(bodies);
    expect(sizes(batches)).toEqual([10, 10, 5]);
    expect(batches.flat()).toEqual(bodies);
  });

  it('closes a request before a body that would take it past the byte limit, and one exactly at it stays whole', () => {
    const body = (bytes: number) => 'x'.repeat(bytes);
    expect(sizes(sendBatches([body(100_000), body(100_000), body(100_000), body(100_000), body(100_000)]))).toEqual([
      2, 2, 1,
    ]);
    expect(sizes(sendBatches([body(MAX_BATCH_BYTES / 2), body(MAX_BATCH_BYTES / 2), body(1)]))).toEqual([2, 1]);
  });

  it('counts bytes, not characters: text outside ASCII fills a request sooner', () => {
    // 62,500 characters of 'é' are 125,000 bytes: two fit, a third does not.
    const accented = 'é'.repeat(62_500);
    expect(sizes(sendBatches([accented, accented, accented]))).toEqual([2, 1]);
  });

  it('sends a body over the limit on its own, without taking its neighbours with it', () => {
    const huge = 'x'.repeat(MAX_BATCH_BYTES + 1);
    expect(sendBatches(['a', huge, 'b'])).toEqual([['a'], [huge], ['b']]);
  });

  it('keeps every body, in order, in requests SQS accepts, whatever the mix', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 120_000 }), { maxLength: 40 }), (lengths) => {
        const bodies = lengths.map((n, i) => `${i}:${'y'.repeat(n)}`);
        const batches = sendBatches(bodies);
        expect(batches.flat()).toEqual(bodies);
        for (const batch of batches) {
          expect(batch.length).toBeGreaterThan(0);
          expect(batch.length).toBeLessThanOrEqual(MAX_BATCH);
          const bytes = batch.reduce((sum, b) => sum + Buffer.byteLength(b), 0);
          if (batch.length > 1) expect(bytes).toBeLessThanOrEqual(MAX_BATCH_BYTES);
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe('the delay a send asks SQS for', () => {
  it('is whole seconds from 0 to 900, and none when none was asked for', () => {
    expect(sendDelay(undefined)).toBeUndefined();
    expect(sendDelay(2.4)).toBe(2);
    expect(sendDelay(-3)).toBe(0);
    expect(sendDelay(3600)).toBe(900);
  });
});
