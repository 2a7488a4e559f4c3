import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { isTerminal, type Job } from '../core/model.js';
import type { JobStore } from '../core/ports.js';
import type { S3PayloadStore } from './payloads.js';

const JOB_SK = 'JOB';
const ACTIVE_INDEX = 'active';

/** How long finished jobs (and so their idempotency keys) are kept. */
export const DEFAULT_RETENTION_DAYS = 30;

type JobItem = Job & { pk: string; sk: string; expiresAt?: number; activeShard?: string };

/** Shards of the sparse `active` index (see shared/resources.ts). */
export const ACTIVE_SHARDS = 16;

function activeShard(id: string): string {
  let hash = 0;
  for (let i = 0; i < id.length; i++) hash = (hash * 31 + id.charCodeAt(i)) >>> 0;
  return `A${hash % ACTIVE_SHARDS}`;
}

/**
 * Jobs on DynamoDB: one item per job, tasks inside it, so every transition is one conditional
 * single-item write on `version` (no transactions). Large inputs and results are offloaded to S3
 * before the write. Finished jobs get a TTL; expired ones read as absent even before DynamoDB's
 * TTL (or an emulator without TTL) deletes them.
 */
export class DynamoJobStore implements JobStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly payloads: S3PayloadStore,
    private readonly retentionDays = DEFAULT_RETENTION_DAYS,
  ) {}

  async create(job: Job): Promise<{ created: true } | { created: false; existing: Job }> {
    const item = await this.toItem(job);
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
      const existing = error.Item ? fromItem(unmarshall(error.Item) as JobItem) : await this.read(job.id);
      if (existing && isExpired(existing)) {
        // Its retention is over, so its idempotency key may be used again: replace that very item.
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: item,
            ConditionExpression: 'expiresAt = :expired',
            ExpressionAttributeValues: { ':expired': existing.expiresAt },
          }),
        );
        return { created: true };
      }
      if (!existing) return this.create(job);
      return { created: false, existing };
    }
  }

  async get(id: string): Promise<Job | undefined> {
    const job = await this.read(id);
    return job && !isExpired(job) ? job : undefined;
  }

  private async read(id: string): Promise<(Job & { expiresAt?: number }) | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: pk(id), sk: JOB_SK }, ConsistentRead: true }),
    );
    return Item ? fromItem(Item as JobItem) : undefined;
  }

  async replace(job: Job, expectedVersion: number): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: await this.toItem(job),
          ConditionExpression: 'version = :expected',
          ExpressionAttributeValues: { ':expected': expectedVersion },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async *activeJobs(createdBefore: Date): AsyncIterable<string> {
    for (let shard = 0; shard < ACTIVE_SHARDS; shard++) {
      let cursor: Record<string, unknown> | undefined;
      do {
        const page = await this.doc.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: ACTIVE_INDEX,
            KeyConditionExpression: 'activeShard = :shard AND createdAt < :before',
            ExpressionAttributeValues: { ':shard': `A${shard}`, ':before': createdBefore.toISOString() },
            ExclusiveStartKey: cursor,
          }),
        );
        for (const item of page.Items ?? []) yield String(item.pk).slice('JOB#'.length);
        cursor = page.LastEvaluatedKey;
      } while (cursor);
    }
  }

  private async toItem(job: Job): Promise<JobItem> {
    const tasks = await Promise.all(
      job.tasks.map(async (task) => ({
        ...task,
        input: await this.payloads.offload(`${job.id}/${task.index}/input`, task.input),
        ...(task.result !== undefined
          ? { result: await this.payloads.offload(`${job.id}/${task.index}/result`, task.result) }
          : {}),
      })),
    );
    // Storage-only attributes are recomputed on every write, never carried over from a read.
    const { expiresAt: _expires, ...fields } = job as Job & { expiresAt?: number };
    const item: JobItem = { ...fields, pk: pk(job.id), sk: JOB_SK, tasks };
    if (isTerminal(job.status)) {
      if (job.endedAt) item.expiresAt = Math.floor(Date.parse(job.endedAt) / 1000) + this.retentionDays * 86400;
    } else {
      item.activeShard = activeShard(job.id);
    }
    return item;
  }
}

function pk(id: string): string {
  return `JOB#${id}`;
}

function fromItem(item: JobItem): Job & { expiresAt?: number } {
  const { pk: _pk, sk: _sk, activeShard: _shard, ...job } = item;
  return job;
}

function isExpired(job: Job & { expiresAt?: number }): boolean {
  return job.expiresAt !== undefined && job.expiresAt * 1000 <= Date.now();
}
