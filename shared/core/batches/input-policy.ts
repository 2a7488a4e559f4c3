import { PayloadTooLargeError, ValidationError } from '../errors.js';

/**
 * Which objects a batch may read as its input. A caller names a bucket and key, and the worker
 * reads it with a role that can read far more (every job's outputs live in the same bucket): so the
 * engine, not IAM alone, decides. The stack's own bucket is readable only under `ownPrefix` (where a
 * deployment lets services drop input files) or as the job's own upload; any other bucket must be
 * listed by the deployment.
 */
export interface InputPolicy {
  /** Buckets besides the stack's own that inputs may name (`batchInputBuckets`, `BATCH_INPUT_BUCKETS`). */
  buckets: string[];
  /** The one prefix of the stack's own bucket callers may name (`BATCH_INPUT_PREFIX`); '' for none. */
  ownPrefix: string;
  /** The largest input file a batch takes (`BATCH_INPUT_MAX_BYTES`), uploads included. */
  maxBytes: number;
}

export const DEFAULT_INPUT_POLICY: InputPolicy = {
  buckets: [],
  ownPrefix: 'incoming/',
  // S3's largest single PUT, and so the largest presigned upload.
  maxBytes: 5 * 1024 ** 3,
};

/** Refuses an input file the policy does not let callers name; `ownBucket` is the stack's own. */
export function checkInputName(policy: InputPolicy, ownBucket: string, bucket: string, key: string): void {
  const own = bucket === ownBucket;
  const { ownPrefix, buckets } = policy;
  if (own && !(ownPrefix !== '' && key.startsWith(ownPrefix) && !key.slice(ownPrefix.length).includes('..'))) {
    throw new ValidationError('The batch input must be a file callers may name', [
      {
        path: 'batch.input.key',
        message:
          ownPrefix === ''
            ? "this deployment's own bucket takes no input files; upload with upload: true"
            : `in this deployment's own bucket, only keys under '${ownPrefix}' (or upload with upload: true)`,
      },
    ]);
  }
  if (!own && !buckets.includes(bucket)) {
    throw new ValidationError('The batch input bucket is not one this deployment reads from', [
      { path: 'batch.input.bucket', message: `'${bucket}' is not listed in batchInputBuckets` },
    ]);
  }
}

/** Refuses an input file larger than the policy takes (`path`: where the error points). */
export function checkInputSize(policy: InputPolicy, bytes: number, path: string): void {
  if (bytes > policy.maxBytes) {
    throw new PayloadTooLargeError(`The batch input is ${bytes} bytes; the limit is ${policy.maxBytes}`, [
      { path, message: `at most ${policy.maxBytes} bytes` },
    ]);
  }
}
