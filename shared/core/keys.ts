/**
 * The one layout of everything we store under a key: DynamoDB item keys and S3 object keys. The
 * adapters, the engines, the resource declaration (lifecycle per prefix) and the IAM rules all
 * read it from here, so a key is spelled once.
 */

// ─── DynamoDB: one table, a job's items under one partition ──────────────────────────────────

const JOB_PARTITION = 'JOB#';
const TALLY_SORT = 'TALLY#';

/** The partition of job `id`: the job item and its batch tallies. */
export function jobPartition(id: string): string {
  return `${JOB_PARTITION}${id}`;
}

/** The job id a partition key names (what a scan or an index query returns). */
export function jobIdOfPartition(pk: string): string {
  return pk.slice(JOB_PARTITION.length);
}

/** The sort key of every job item (what a scan for jobs filters on). */
export const JOB_SORT_KEY = 'JOB';

/** The job item itself. */
export function jobItemKey(id: string): { pk: string; sk: string } {
  return { pk: jobPartition(id), sk: JOB_SORT_KEY };
}

/** Tally `group` of batch `jobId`; zero-padded so a query returns the groups in order. */
export function tallyItemKey(jobId: string, group: number): { pk: string; sk: string } {
  return { pk: jobPartition(jobId), sk: `${TALLY_SORT}${String(group).padStart(6, '0')}` };
}

/** What every tally's sort key begins with (to query them all). */
export const TALLY_SORT_PREFIX = TALLY_SORT;

export function tallyGroupOfSortKey(sk: string): number {
  return Number(sk.slice(TALLY_SORT.length));
}

/** A retained item's TTL (epoch seconds): `days` after `from`. */
export function expiresAfter(from: Date | string, days: number): number {
  const at = typeof from === 'string' ? Date.parse(from) : from.getTime();
  return Math.floor(at / 1000) + days * 86_400;
}

// ─── S3: one bucket, one prefix per kind of object ───────────────────────────────────────────

/**
 * The bucket's top-level prefixes and who keeps them how long: `inputs/` (rows the API stored,
 * uploads, spilled chunk rows) as long as their objects' lifecycle says; `outputs/` and
 * `payloads/` as long as their jobs.
 */
export const OBJECT_PREFIXES = {
  inputs: 'inputs/',
  outputs: 'outputs/',
  payloads: 'payloads/',
} as const;

/** Batch input objects: stored rows, the upload, and chunk rows too large for a message. */
export const inputKeys = {
  /** The inline rows of a submission; named by the request, so a replay writes the same object. */
  submittedRows: (jobId: string, requestTag: string) => `${OBJECT_PREFIXES.inputs}${jobId}/rows-0-${requestTag}.jsonl`,
  /** A keyed append's rows; named by the key and the rows, so a racing retry writes the same object. */
  keyedAppend: (jobId: string, keyTag: string, rowsTag: string) =>
    `${OBJECT_PREFIXES.inputs}${jobId}/rows-a${keyTag}-${rowsTag}.jsonl`,
  append: (jobId: string, part: number, token: string) =>
    `${OBJECT_PREFIXES.inputs}${jobId}/rows-${part}-${token}.jsonl`,
  upload: (jobId: string) => `${OBJECT_PREFIXES.inputs}${jobId}/upload`,
  chunkRows: (jobId: string, chunk: number) => `${OBJECT_PREFIXES.inputs}${jobId}/chunks/${chunk}.json`,
};

/** Batch outputs: per-chunk outcomes, the assembly's state between steps, the assembled files. */
export const outputKeys = {
  /** Everything of one job's outputs. */
  job: (jobId: string) => `${OBJECT_PREFIXES.outputs}${jobId}/`,
  /** A chunk's committed outcomes: unique per attempt, the tally names the one that counts. */
  chunk: (jobId: string, chunk: number, commitToken: string) =>
    `${OBJECT_PREFIXES.outputs}${jobId}/chunks/${chunk}/${commitToken}.jsonl`,
  /** The outcomes of a chunk round whose other rows go round again. */
  partial: (jobId: string, chunk: number, token: string, attempt: number) =>
    `${OBJECT_PREFIXES.outputs}${jobId}/chunks/${chunk}/${token}.r${attempt}.jsonl`,
  assembly: (jobId: string, fromChunk: number) => `${OBJECT_PREFIXES.outputs}${jobId}/assembly/${fromChunk}.json`,
};

/** Where a job's payloads live: every reference of a job names a key under this. */
export function payloadPrefix(jobId: string): string {
  return `${OBJECT_PREFIXES.payloads}${jobId}/`;
}

/**
 * Whether `ref` may be followed as one of job `jobId`'s payloads: only keys inside its own prefix,
 * with no step out of it. Only the store writes references, so this is defence in depth.
 */
export function isPayloadOf(ref: string, jobId: string): boolean {
  return ref.startsWith(payloadPrefix(jobId)) && !ref.includes('..');
}
