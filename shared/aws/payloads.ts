import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { PayloadStore } from '../core/ports.js';

/** Values above this many bytes of JSON go to S3 (claim-check); DynamoDB items stay small. */
export const DEFAULT_INLINE_LIMIT_BYTES = 64 * 1024;

const REF = '$payload';

type Ref = { [REF]: string };

function isRef(value: unknown): value is Ref {
  return Boolean(value && typeof value === 'object' && typeof (value as Ref)[REF] === 'string');
}

/**
 * Task inputs and results larger than the limit are stored as objects under deterministic keys
 * (one per task and field), so a retried write re-puts the same object rather than leaking one.
 */
export class S3PayloadStore implements PayloadStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    readonly inlineLimitBytes = DEFAULT_INLINE_LIMIT_BYTES,
  ) {}

  async offload(key: string, value: unknown): Promise<unknown> {
    if (value === undefined || isRef(value)) return value;
    const body = JSON.stringify(value);
    if (Buffer.byteLength(body) <= this.inlineLimitBytes) return value;
    const objectKey = `payloads/${key}.json`;
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body, ContentType: 'application/json' }),
    );
    return { [REF]: objectKey };
  }

  async resolve(value: unknown): Promise<unknown> {
    if (!isRef(value)) return value;
    const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: value[REF] }));
    return JSON.parse((await object.Body?.transformToString('utf8')) ?? 'null');
  }
}
