import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { PayloadStore } from '../core/ports.js';

/** Values above this many bytes of JSON go to S3 (claim-check); DynamoDB items stay small. */
export const DEFAULT_INLINE_LIMIT_BYTES = 64 * 1024;

const REF = '$payload';

export type PayloadRef = { [REF]: string };

export function isPayloadRef(value: unknown): value is PayloadRef {
  return Boolean(value && typeof value === 'object' && typeof (value as PayloadRef)[REF] === 'string');
}

/** Large task inputs and results as S3 objects, referenced from the job item. */
export class S3PayloadStore implements PayloadStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    readonly inlineLimitBytes = DEFAULT_INLINE_LIMIT_BYTES,
  ) {}

  /** Stores JSON text under `payloads/KEY.json` and returns the reference to keep instead. */
  async offloadText(key: string, json: string): Promise<PayloadRef> {
    const objectKey = `payloads/${key}.json`;
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: json, ContentType: 'application/json' }),
    );
    return { [REF]: objectKey };
  }

  async resolve(value: unknown): Promise<unknown> {
    if (!isPayloadRef(value)) return value;
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: value[REF] }));
      return JSON.parse((await object.Body?.transformToString('utf8')) ?? 'null');
    } catch (error) {
      // Expired by the bucket's lifecycle before the job item: say so rather than fail the read.
      if (error instanceof NoSuchKey) return { expired: true, message: 'this value was stored in S3 and has expired' };
      throw error;
    }
  }
}
