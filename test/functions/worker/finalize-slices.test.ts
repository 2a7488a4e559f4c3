import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { createClients } from '../../../shared/aws/clients.js';
import { apiClient } from '../../support/api.js';
import { startTestStack } from '../../support/stack.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Batch = any;

let stack: LocalStack;
beforeAll(async () => {
  // Few chunks per finalize step, so a modest batch is assembled over many steps, as a huge one is.
  stack = await startTestStack({ handlerEnv: { FINALIZE_CHUNKS_PER_STEP: '7' } });
});
afterAll(() => stack?.stop());

async function lines(url: string): Promise<string[]> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return (await response.text()).replace(/\n$/, '').split('\n');
}

describe('outputs larger than a part, assembled over many finalize steps', () => {
  it('hold every line once, in order, with the sizes the job reports', async () => {
    // 60,000 rows in 60 chunks, 7 chunks per step: 9 steps. `results` (~10 MB) and `echo` (~8.5 MB)
    // cross the 8 MB part size part-way through a step, so each becomes a multipart upload
    // carried from step to step; `errors` stays small and is one plain object.
    const rows = 60_000;
    const pad = 'x'.repeat(120);
    const body = Array.from({ length: rows }, (_, i) =>
      JSON.stringify(i % 10_000 === 4 ? { n: i + 1, fail: true } : { n: i + 1, pad }),
    ).join('\n');
    const { s3 } = createClients();
    const bucket = stack.info.buckets.data!;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'incoming/sixty-thousand.jsonl', Body: body }));
    s3.destroy();
    const api = apiClient(stack);
    const submitted = await api.submit({
      type: 'assembled',
      batch: {
        processor: 'demo.rows',
        input: { bucket, key: 'incoming/sixty-thousand.jsonl', format: 'jsonl' },
        chunkSize: 1000,
        maxFailedRows: 10,
      },
    });
    expect(submitted.status).toBe(202);
    const job = (await api.waitFor((submitted.body as Batch).id, 120)) as Batch;
    expect(job.status).toBe('SUCCEEDED');
    expect(job.counts).toMatchObject({ total: rows, succeeded: rows - 6, failed: 6 });
    const { results, errors, echo } = job.batch.outputs;
    const resultLines = await lines(results.url);
    expect(resultLines.map((l) => JSON.parse(l).line)).toEqual(Array.from({ length: rows }, (_, i) => i + 1));
    expect(results).toMatchObject({ lines: rows, bytes: Buffer.byteLength(`${resultLines.join('\n')}\n`) });
    expect(results.bytes).toBeGreaterThan(8 * 1024 * 1024);
    const echoLines = await lines(echo.url);
    const failing = [5, 10_005, 20_005, 30_005, 40_005, 50_005];
    expect(echoLines.map((l) => JSON.parse(l).n)).toEqual(
      Array.from({ length: rows }, (_, i) => i + 1).filter((n) => !failing.includes(n)),
    );
    expect((await lines(errors.url)).map((l) => JSON.parse(l).line)).toEqual([
      5, 10_005, 20_005, 30_005, 40_005, 50_005,
    ]);
  }, 180_000);
});
