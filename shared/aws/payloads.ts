import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { isPayloadOf, payloadPrefix } from '../core/keys.js';
import type { PayloadStore } from '../core/ports.js';

/** Values above this many bytes of JSON go to S3 (claim-check); DynamoDB items stay small. */
export const DEFAULT_INLINE_LIMIT_BYTES = 64 * 1024;

/**
 * The most a stored value is read back whole. Only the store writes payload objects, and what it
 * writes is bounded by the body limit (inputs) and the invoker's reply limit (results): this is a
 * guard against an object that is not what the store wrote, not a limit callers meet.
 */
export const MAX_PAYLOAD_READ_BYTES = 16 * 1024 * 1024;

/** Where a job's payloads live (shared/core/keys.ts): every reference of a job names a key under this. */

/**
 * Large task inputs and results as S3 objects. A reference is a key the job store keeps in an
 * attribute of its own (`inputRef`, `resultRef`): no user value is ever read as one, and a
 * reference is followed only inside its own job's prefix.
 */
export class S3PayloadStore implements PayloadStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    readonly inlineLimitBytes = DEFAULT_INLINE_LIMIT_BYTES,
  ) {}

  /** Stores JSON text under the job's prefix and returns the reference to keep instead. */
  async offloadText(jobId: string, name: string, json: string): Promise<string> {
    const key = `${payloadPrefix(jobId)}${name}.json`;
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: json,
        ContentType: 'application/json',
        ContentLength: Buffer.byteLength(json),
      }),
    );
    return key;
  }

  async load(ref: string, jobId: string): Promise<unknown> {
    if (!isPayloadOf(ref, jobId)) {
      throw new Error(`payload reference ${ref.slice(0, 200)} is not one of job ${jobId}`);
    }
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: ref }));
      if ((object.ContentLength ?? 0) > MAX_PAYLOAD_READ_BYTES) {
        object.Body?.transformToWebStream().cancel();
        throw new Error(`payload ${ref} is ${object.ContentLength} bytes, over ${MAX_PAYLOAD_READ_BYTES}`);
      }
      return JSON.parse((await object.Body?.transformToString('utf8')) ?? 'null');
    } catch (error) {
      // Expired by the bucket's lifecycle before the job item: say so rather than fail the read. S3
      // answers a missing key with 403, not 404, to a role that may not list the bucket (ours).
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (error instanceof NoSuchKey || status === 404 || status === 403) {
        return { expired: true, message: 'this value was stored in S3 and has expired' };
      }
      throw error;
    }
  }
}
