import { randomUUID } from 'node:crypto';
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
import { expiresAfter, JOB_SORT_KEY, jobIdOfPartition, jobItemKey } from '../core/keys.js';
import { isTerminal, type Job, type Task } from '../core/model.js';
import type { AnyJob, ExpiredItems, JobStore } from '../core/ports.js';
import { type SearchKeys, searchKeys } from '../core/search.js';
import type { S3PayloadStore } from './payloads.js';

/** How long finished jobs (and so their idempotency keys) are kept. */
export const DEFAULT_RETENTION_DAYS = 30;

/** DynamoDB refuses items over 400 KB; above this estimate the largest values move to S3. */
export const ITEM_BUDGET_BYTES = 350_000;

/**
 * A task list whose JSON is at least this long is stored brotli-compressed (`tasksZ`). Every task
 * change rewrites the whole item and DynamoDB bills each started KB, so a 100-task job's list
 * (~20 KB as a list of maps, ~3 KB compressed) costs a seventh as much per write. Lists under a KB
 * would not bill fewer units and stay readable in the console.
 */
export const COMPRESS_TASKS_FROM_BYTES = 1024;

/**
 * A task as stored: user values as JSON text (`input`, `result`), or, once offloaded, only the key
 * of the S3 object holding that text (`inputRef`, `resultRef`). The two never share an attribute, so
 * no user value can pass for a reference.
 */
type TaskItem = Omit<Task, 'input' | 'result'> & { input?: string; result?: string };
type JobItem = Omit<Job, 'meta' | 'tasks'> & {
  pk: string;
  sk: string;
  meta?: string;
  /** The tasks, either as a list or, from COMPRESS_TASKS_FROM_BYTES, as brotli-compressed JSON. */
  tasks?: TaskItem[];
  tasksZ?: Uint8Array;
  /** Random per write: tells our own committed write from someone else's when a retried Put is refused. */
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

export type StoredItem = JobItem | BatchItem;

/**
 * Jobs on DynamoDB: one item per job, tasks inside it, so every transition is one conditional
 * single-item write on `version` (no transactions).
 *
 * User values (meta, task inputs and results) are stored as JSON text: any JSON number survives
 * (DynamoDB's number type would refuse some), and sizes are known before the write. Values over
 * the inline limit, and the largest ones while the item is over budget, live in S3 under keys
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
      writeId: randomUUID(),
    };
    if (isTerminal(job.status) && job.endedAt) {
      item.expiresAt = expiresAfter(job.endedAt, this.retention(job.type));
    }
    return item;
  }

  private async toItem(job: Job): Promise<JobItem> {
    const { expiresAt: _expires, meta, tasks: _tasks, ...fields } = job as Job & { expiresAt?: number };
    const inputTag = job.requestHash.slice(0, 16);
    const values: { task: TaskItem; field: 'input' | 'result'; name: string }[] = [];
    const tasks = job.tasks.map((task) => {
      const { input, result, ...rest } = task;
      const encoded: TaskItem = { ...rest };
      if (task.inputRef === undefined) {
        encoded.input = JSON.stringify(input ?? null);
        values.push({ task: encoded, field: 'input', name: `${inputTag}/${task.index}/input` });
      }
      if (task.resultRef === undefined && result !== undefined) {
        encoded.result = JSON.stringify(result);
        values.push({ task: encoded, field: 'result', name: `${task.index}/result-${task.attempts}` });
      }
      return encoded;
    });
    const item: JobItem = {
      ...fields,
      ...jobItemKey(job.id),
      ...(meta !== undefined ? { meta: JSON.stringify(meta) } : {}),
      tasks,
      ...(this.search ? searchKeys(job) : {}),
      writeId: randomUUID(),
    };
    if (isTerminal(job.status) && job.endedAt) {
      item.expiresAt = expiresAfter(job.endedAt, this.retention(job.type));
    }

    const offload = async (value: (typeof values)[number]) => {
      const text = value.task[value.field];
      if (text === undefined) return;
      const ref = await this.payloads.offloadText(job.id, value.name, text);
      delete value.task[value.field];
      value.task[value.field === 'input' ? 'inputRef' : 'resultRef'] = ref;
    };
    const inline = (value: (typeof values)[number]) => Buffer.byteLength(value.task[value.field] ?? '');
    await Promise.all(values.filter((v) => inline(v) > this.payloads.inlineLimitBytes).map(offload));
    let size = Buffer.byteLength(JSON.stringify(item));
    if (size > ITEM_BUDGET_BYTES) {
      const largest = values.filter((v) => v.task[v.field] !== undefined).sort((a, b) => inline(b) - inline(a));
      for (const value of largest) {
        if (size <= ITEM_BUDGET_BYTES) break;
        size -= inline(value);
        await offload(value);
      }
    }
    return compressTasks(item);
  }
}

function compressTasks(item: JobItem): JobItem {
  const json = JSON.stringify(item.tasks);
  if (Buffer.byteLength(json) < COMPRESS_TASKS_FROM_BYTES) return item;
  const { tasks: _tasks, ...rest } = item;
  // Quality 6: within a few percent of the smallest output at a fraction of a millisecond.
  return { ...rest, tasksZ: brotliCompressSync(json, { params: { [constants.BROTLI_PARAM_QUALITY]: 6 } }) };
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
  if (item.kind === 'batch') {
    const { meta, batch, ...job } = withoutStorage(item as BatchItem);
    return {
      ...job,
      ...(meta !== undefined ? { meta: JSON.parse(meta) as Record<string, unknown> } : {}),
      batch: { ...batch, context: JSON.parse(batch.context) as Record<string, unknown> },
    };
  }
  return fromItem(item as JobItem);
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
