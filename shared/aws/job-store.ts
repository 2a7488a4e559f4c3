import { randomBytes } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { BatchJob } from '../core/batches/model.js';
import { taskId } from '../core/ids.js';
import { expiresAfter, JOB_SORT_KEY, jobIdOfPartition, jobItemKey } from '../core/keys.js';
import { isTerminal, type Job, type Task } from '../core/model.js';
import type { AnyJob, ExpiredItems, JobStore } from '../core/ports.js';
import { type SearchKeys, searchKeys } from '../core/search.js';
import { dynamoItemSize } from './meter.js';
import type { S3PayloadStore } from './payloads.js';

/** How long finished jobs (and so their idempotency keys) are kept. */
export const DEFAULT_RETENTION_DAYS = 30;

/**
 * DynamoDB refuses items over 400 KB. While the item as written, or the JSON a read of it inflates,
 * is over this, the largest values move to S3.
 */
export const ITEM_BUDGET_BYTES = 350_000;

/**
 * DynamoDB bills a write by every started KB of the larger of the item before and after it, and a
 * job is written at least twice (create, finish). An item that fits one unit as plain attributes is
 * written plain (readable in the console); any larger one is written compact (`jobZ`), which keeps
 * a job with a ~1 KB input and result in one unit per write instead of two. The ceiling leaves room
 * for the engines' own rounding of number sizes (dynalite's differs from ours by a byte per number).
 */
export const PLAIN_ITEM_MAX_BYTES = 1000;

/**
 * A task as stored in the plain form: user values as JSON text (`input`, `result`), or, once
 * offloaded, only the key of the S3 object holding that text (`inputRef`, `resultRef`). The two
 * never share an attribute, so no user value can pass for a reference.
 */
type TaskItem = Omit<Task, 'input' | 'result'> & { input?: string; result?: string };
/** The plain form: every field an attribute of its own, the tasks a list of maps. */
type JobItem = Omit<Job, 'meta' | 'tasks'> & {
  pk: string;
  sk: string;
  meta?: string;
  tasks?: TaskItem[];
  /** Written before the compact form: the task list as brotli-compressed JSON. Still read. */
  tasksZ?: Uint8Array;
  /** Random per write: tells our own committed write from someone else's when a retried Put is refused. */
  writeId: string;
  expiresAt?: number;
} & Partial<SearchKeys>;

/**
 * What the compact form keeps as attributes: what conditions, the sweeper's Scan, the TTL and Find's
 * indexes read (`status`, `createdAt`, `version`, `expiresAt`, `type`, the search keys), and the
 * keys. The id is the partition key's, the kind is `tasks` (batches are always plain).
 */
type CompactAttributes = 'type' | 'status' | 'createdAt' | 'version';
/**
 * Everything else, brotli-compressed as one JSON document, so the user's values (inputs, results,
 * meta) and the random ids and hashes around them share one compression. Inside it user values are
 * plain JSON (a JSON document keeps any JSON number), and offloaded ones are absent beside their
 * `inputRef`/`resultRef`, as in the plain form.
 */
type CompactTask = Omit<Task, 'id'> & { id?: string };
type CompactBody = Omit<Job, CompactAttributes | 'id' | 'kind' | 'tasks'> & { tasks: CompactTask[] };
type CompactItem = Pick<Job, CompactAttributes> & {
  pk: string;
  sk: string;
  jobZ: Uint8Array;
  writeId: string;
  expiresAt?: number;
} & Partial<SearchKeys>;

/** A batch job: its settings and plan inline; user values (meta, context) as JSON text. */
type BatchItem = Omit<BatchJob, 'meta' | 'batch'> & {
  pk: string;
  sk: string;
  meta?: string;
  batch: Omit<BatchJob['batch'], 'context'> & { context: string };
  writeId: string;
  expiresAt?: number;
} & Partial<SearchKeys>;

export type StoredItem = JobItem | CompactItem | BatchItem;

/**
 * Jobs on DynamoDB: one item per job, tasks inside it, so every transition is one conditional
 * single-item write on `version` (no transactions).
 *
 * User values (meta, task inputs and results) are stored as JSON, never as DynamoDB types: any
 * JSON number survives (DynamoDB's number type would refuse some), and sizes are known before the
 * write. An item is written plain while it fits one write unit and compact past that (see
 * PLAIN_ITEM_MAX_BYTES); both are read, and so is the older form with a compressed task list. Values
 * over the inline limit, and the largest ones while the item is over budget, live in S3 under keys
 * unique to the request (inputs) or attempt (results), so no write can overwrite another's value.
 *
 * Finished jobs get a TTL; expired ones read as absent even before DynamoDB's TTL (or an emulator
 * without TTL) deletes them.
 */
export class DynamoJobStore implements JobStore, ExpiredItems {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly payloads: S3PayloadStore,
    private readonly retentionDays = DEFAULT_RETENTION_DAYS,
    /** Retention per job type, where it differs from the default. */
    private readonly retentionByType: Record<string, number> = {},
    /** Find's index keys on job items; off saves their index writes (and turns Find off). */
    private readonly search = true,
  ) {}

  private retention(type: string): number {
    return this.retentionByType[type] ?? this.retentionDays;
  }

  async create(job: AnyJob): Promise<{ created: true } | { created: false; existing: AnyJob }> {
    const item = await this.encode(job);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { created: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // The old item comes back with the refusal where the engine supports it (not dynalite).
      const stored = error.Item ? (unmarshall(error.Item) as StoredItem) : await this.readItem(job.id);
      if (!stored) return this.create(job);
      // Our own earlier attempt of this very Put committed (the SDK retried it).
      if (stored.writeId === item.writeId) return { created: true };
      if (isExpired(stored)) {
        // Its retention is over, so its idempotency key may be used again: replace that very item.
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: item,
            ConditionExpression: 'expiresAt = :expired',
            ExpressionAttributeValues: { ':expired': stored.expiresAt },
          }),
        );
        return { created: true };
      }
      return { created: false, existing: decodeItem(stored) };
    }
  }

  async get(id: string): Promise<Job | undefined> {
    const job = await this.read(id);
    return job?.kind === 'tasks' ? job : undefined;
  }

  async read(id: string): Promise<AnyJob | undefined> {
    const item = await this.readItem(id);
    return item && !isExpired(item) ? decodeItem(item) : undefined;
  }

  async peek(id: string): Promise<AnyJob | undefined> {
    const item = await this.readItem(id, false);
    return item && !isExpired(item) ? decodeItem(item) : undefined;
  }

  async replace(job: AnyJob, expectedVersion: number): Promise<boolean> {
    const item = await this.encode(job);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: 'version = :expected',
          ExpressionAttributeValues: { ':expected': expectedVersion },
        }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // A refused retry of a Put that had in fact committed is our write, not a lost race.
      return (await this.readItem(job.id))?.writeId === item.writeId;
    }
  }

  async discard(id: string, version: number): Promise<boolean> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: jobItemKey(id),
          ConditionExpression: 'version = :version',
          ExpressionAttributeValues: { ':version': version },
        }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return false;
    }
  }

  /**
   * Unfinished jobs, for the sweeper: a parallel Scan that returns only their keys. It reads the
   * whole table, so it runs rarely (see the schedule in shared/resources.ts).
   */
  async *activeJobs(createdBefore: Date): AsyncIterable<{ id: string; kind: AnyJob['kind'] }> {
    const segments = 4;
    const pages = await Promise.all(
      Array.from({ length: segments }, async (_, segment) => {
        const ids: { id: string; kind: AnyJob['kind'] }[] = [];
        let cursor: Record<string, unknown> | undefined;
        do {
          const page = await this.doc.send(
            new ScanCommand({
              TableName: this.table,
              Segment: segment,
              TotalSegments: segments,
              ProjectionExpression: 'pk, kind',
              // A batch stays of interest until its outputs are assembled.
              FilterExpression:
                'sk = :job AND createdAt < :before AND (NOT (#status IN (:succeeded, :failed, :aborted)) OR (kind = :batch AND attribute_not_exists(#batch.outputs)))',
              ExpressionAttributeNames: { '#status': 'status', '#batch': 'batch' },
              ExpressionAttributeValues: {
                ':job': JOB_SORT_KEY,
                ':batch': 'batch',
                ':succeeded': 'SUCCEEDED',
                ':failed': 'FAILED',
                ':aborted': 'ABORTED',
                ':before': createdBefore.toISOString(),
              },
              ExclusiveStartKey: cursor,
            }),
          );
          for (const item of page.Items ?? []) {
            ids.push({ id: jobIdOfPartition(String(item.pk)), kind: item.kind === 'batch' ? 'batch' : 'tasks' });
          }
          cursor = page.LastEvaluatedKey;
        } while (cursor);
        return ids;
      }),
    );
    yield* pages.flat();
  }

  /**
   * Deletes items past their retention. DynamoDB's TTL does this for free in AWS; the local
   * emulators have no TTL, so there the sweeper does it (reads already treat them as gone).
   */
  async purgeExpired(now: Date): Promise<number> {
    let purged = 0;
    let cursor: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new ScanCommand({
          TableName: this.table,
          ProjectionExpression: 'pk, sk',
          FilterExpression: 'expiresAt <= :now',
          ExpressionAttributeValues: { ':now': Math.floor(now.getTime() / 1000) },
          ExclusiveStartKey: cursor,
        }),
      );
      const keys = (page.Items ?? []).map((item) => ({ pk: item.pk, sk: item.sk }));
      for (let i = 0; i < keys.length; i += 25) {
        let requests: Record<string, unknown>[] | undefined = keys
          .slice(i, i + 25)
          .map((Key) => ({ DeleteRequest: { Key } }));
        while (requests && requests.length > 0) {
          const { UnprocessedItems } = await this.doc.send(
            new BatchWriteCommand({ RequestItems: { [this.table]: requests as never } }),
          );
          requests = UnprocessedItems?.[this.table] as Record<string, unknown>[] | undefined;
        }
      }
      purged += keys.length;
      cursor = page.LastEvaluatedKey;
    } while (cursor);
    return purged;
  }

  private async readItem(id: string, consistent = true): Promise<StoredItem | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: jobItemKey(id), ConsistentRead: consistent }),
    );
    return Item as StoredItem | undefined;
  }

  private encode(job: AnyJob): Promise<StoredItem> {
    return job.kind === 'batch' ? Promise.resolve(this.toBatchItem(job)) : this.toItem(job);
  }

  private toBatchItem(job: BatchJob): BatchItem {
    const { meta, batch, ...fields } = job as BatchJob & { expiresAt?: number };
    const item: BatchItem = {
      ...fields,
      ...jobItemKey(job.id),
      ...(meta !== undefined ? { meta: JSON.stringify(meta) } : {}),
      batch: { ...batch, context: JSON.stringify(batch.context) },
      ...(this.search ? searchKeys(job) : {}),
      writeId: randomBytes(12).toString('base64url'),
    };
    if (isTerminal(job.status) && job.endedAt) {
      item.expiresAt = expiresAfter(job.endedAt, this.retention(job.type));
    }
    return item;
  }

  private async toItem(job: Job): Promise<JobItem | CompactItem> {
    const inputTag = job.requestHash.slice(0, 16);
    // Each inline user value as the JSON text that would be stored, and the S3 key it takes if not.
    const values: Value[] = [];
    job.tasks.forEach((task, at) => {
      if (task.inputRef === undefined) {
        values.push(value(at, 'input', `${inputTag}/${task.index}/input`, JSON.stringify(task.input ?? null)));
      }
      if (task.resultRef === undefined && task.result !== undefined) {
        values.push(value(at, 'result', `${task.index}/result-${task.attempts}`, JSON.stringify(task.result)));
      }
    });
    const storage: Storage = {
      ...jobItemKey(job.id),
      ...(this.search ? searchKeys(job) : {}),
      writeId: randomBytes(12).toString('base64url'),
      ...(isTerminal(job.status) && job.endedAt
        ? { expiresAt: expiresAfter(job.endedAt, this.retention(job.type)) }
        : {}),
    };
    const offload = async (v: Value) => {
      v.ref = await this.payloads.offloadText(job.id, v.name, v.text);
    };
    const largestInline = () => values.filter((v) => v.ref === undefined).sort((a, b) => b.bytes - a.bytes);
    await Promise.all(values.filter((v) => v.bytes > this.payloads.inlineLimitBytes).map(offload));

    const plain = plainItem(job, values, storage);
    if (dynamoItemSize(plain) <= PLAIN_ITEM_MAX_BYTES) return plain;

    // Every read inflates and parses the whole document, so what it holds is bounded, not only what is stored.
    let raw = Buffer.byteLength(JSON.stringify(compactBody(job, values)));
    for (const v of largestInline()) {
      if (raw <= ITEM_BUDGET_BYTES) break;
      raw -= v.bytes;
      await offload(v);
    }
    let item = compactItem(job, values, storage);
    // And what DynamoDB stores must fit its limit, measured on the item as written.
    for (const v of largestInline()) {
      if (dynamoItemSize(item) <= ITEM_BUDGET_BYTES) break;
      await offload(v);
      item = compactItem(job, values, storage);
    }
    return item;
  }
}

/** A user value of a task as the write will store it: inline as `text`, or in S3 under `ref`. */
interface Value {
  at: number;
  field: 'input' | 'result';
  name: string;
  text: string;
  bytes: number;
  ref?: string;
}

const value = (at: number, field: Value['field'], name: string, text: string): Value => ({
  at,
  field,
  name,
  text,
  bytes: Buffer.byteLength(text),
});

const REF = { input: 'inputRef', result: 'resultRef' } as const;

/** The attributes both forms of a job item carry for storage's own sake. */
type Storage = { pk: string; sk: string; writeId: string; expiresAt?: number } & Partial<SearchKeys>;

function plainItem(job: Job, values: Value[], storage: Storage): JobItem {
  const { expiresAt: _expires, meta, tasks, ...fields } = job as Job & { expiresAt?: number };
  const encoded = tasks.map(({ input: _input, result: _result, ...rest }): TaskItem => ({ ...rest }));
  for (const v of values) {
    const task = encoded[v.at] as TaskItem;
    if (v.ref !== undefined) task[REF[v.field]] = v.ref;
    else task[v.field] = v.text;
  }
  return {
    ...fields,
    ...storage,
    ...(meta !== undefined ? { meta: JSON.stringify(meta) } : {}),
    tasks: encoded,
  };
}

function compactBody(job: Job, values: Value[]): CompactBody {
  const {
    expiresAt: _expires,
    id: _id,
    kind: _kind,
    type: _type,
    status: _status,
    createdAt: _created,
    version: _version,
    tasks,
    ...fields
  } = job as Job & { expiresAt?: number };
  // Every task id made so far is the job's id and the task's index: only another one is kept.
  const stored = tasks.map(({ id, ...task }) => (id === taskId(job.id, task.index) ? task : { id, ...task }));
  for (const v of values) {
    if (v.ref === undefined) continue;
    const task = stored[v.at] as CompactTask;
    delete task[v.field];
    task[REF[v.field]] = v.ref;
  }
  return { ...fields, tasks: stored };
}

function compactItem(job: Job, values: Value[], storage: Storage): CompactItem {
  const body = JSON.stringify(compactBody(job, values));
  return {
    type: job.type,
    status: job.status,
    createdAt: job.createdAt,
    version: job.version,
    ...storage,
    // Quality 6: within a few percent of the smallest output at a fraction of a millisecond.
    jobZ: brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 6 } }),
  };
}

function fromCompact(item: CompactItem): Job {
  const body = JSON.parse(brotliDecompressSync(item.jobZ).toString('utf8')) as CompactBody;
  const id = jobIdOfPartition(item.pk);
  return {
    ...body,
    // The attributes conditions and scans read are the truth; the document never holds them.
    id,
    kind: 'tasks',
    type: item.type,
    status: item.status,
    createdAt: item.createdAt,
    version: item.version,
    tasks: body.tasks.map((task) => ({
      ...task,
      id: task.id ?? taskId(id, task.index),
      input: task.inputRef === undefined ? (task.input ?? null) : undefined,
    })),
  };
}

function storedTasks(item: JobItem): TaskItem[] {
  if (item.tasksZ) return JSON.parse(brotliDecompressSync(item.tasksZ).toString('utf8')) as TaskItem[];
  return item.tasks ?? [];
}

/** JSON text back to its value; anything else in a value attribute is not ours and reads as nothing. */
function decode(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : undefined;
}

export function decodeItem(item: StoredItem): AnyJob {
  if ('jobZ' in item) return fromCompact(item);
  if (item.kind === 'batch') {
    const { meta, batch, ...job } = withoutStorage(item as BatchItem);
    return {
      ...job,
      ...(meta !== undefined ? { meta: JSON.parse(meta) as Record<string, unknown> } : {}),
      batch: { ...batch, context: JSON.parse(batch.context) as Record<string, unknown> },
    };
  }
  return fromItem(item);
}

/** The item without what only storage needs: keys, write id, TTL and search keys. */
function withoutStorage<T extends StoredItem>(item: T) {
  const { pk: _pk, sk: _sk, writeId: _write, expiresAt: _expires, sOwner: _w, sOrder: _o, sEnd: _e, ...rest } = item;
  return rest;
}

function fromItem(item: JobItem): Job {
  const { meta, tasks: _list, tasksZ: _compressed, ...job } = withoutStorage(item);
  return {
    ...job,
    ...(meta !== undefined ? { meta: JSON.parse(meta) as Record<string, unknown> } : {}),
    tasks: storedTasks(item).map(({ input, result, ...task }) => ({
      ...task,
      input: task.inputRef === undefined ? (decode(input) ?? null) : undefined,
      ...(result !== undefined ? { result: decode(result) } : {}),
    })),
  };
}

export function isExpired(item: { expiresAt?: number }): boolean {
  return item.expiresAt !== undefined && item.expiresAt * 1000 <= Date.now();
}
