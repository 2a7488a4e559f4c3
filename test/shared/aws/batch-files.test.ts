import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { S3BatchFiles } from '../../../shared/aws/batch-files.js';
import { countingS3 } from '../../support/counting-s3.js';
import { startTestStack } from '../../support/stack.js';

let stack: LocalStack;
beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
});
afterAll(() => stack?.stop());

describe('reading an input file', () => {
  it('stops downloading when the reader stops early, as each slice of a plan does', async () => {
    const { s3, downloaded: fetched } = countingS3();
    const bucket = stack.info.buckets.data!;
    const files = new S3BatchFiles(s3, bucket);
    const line = `${JSON.stringify({ pad: 'x'.repeat(90) })}\n`;
    const size = line.length * 400_000; // 40 MB
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'in/big.jsonl', Body: line.repeat(400_000) }));
    const before = fetched();
    const part = [{ kind: 'file' as const, bucket, key: 'in/big.jsonl', format: 'jsonl' as const }];
    for await (const row of files.rows(part)) {
      expect(row.input).toEqual({ pad: 'x'.repeat(90) });
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
    // A reader that left the rest of the body flowing downloaded the whole 40 MB for one row (in
    // AWS: a 5 GB file read to its end by every slice of its plan).
    expect(fetched() - before).toBeLessThan(size / 4);
    // And S3 is reachable as before.
    expect(await files.exists(bucket, 'in/big.jsonl')).toBe(true);
    s3.destroy();
  }, 15_000);
});
