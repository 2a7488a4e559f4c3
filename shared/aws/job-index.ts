import { BatchGetCommand, type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { jobIdOfPartition, jobItemKey } from '../core/keys.js';
import type { AnyJob } from '../core/ports.js';
import type { IndexPartition, JobIndex } from '../core/search.js';
import { decodeItem, isExpired, type StoredItem } from './job-store.js';

/** Pages one Query may read per partition before the page answers with what it has. */
const MAX_PAGES = 4;
/** BatchGetItem takes at most 100 keys. */
const BATCH_GET = 100;

/** The search indexes of the jobs table (see shared/core/search.ts): Query for keys, BatchGetItem for jobs. */
export class DynamoJobIndex implements JobIndex {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async read(
    partition: IndexPartition,
    range: { lo: string; hi: string },
    order: 'asc' | 'desc',
    limit: number,
  ): Promise<{ entries: { id: string; order: string }[]; exhausted: boolean; frontier?: string }> {
    const key = partition.index === 'byOwner' ? 'sOwner' : 'sEnd';
    const entries: { id: string; order: string }[] = [];
    let cursor: Record<string, unknown> | undefined;
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: partition.index,
          KeyConditionExpression: '#k = :k AND sOrder BETWEEN :lo AND :hi',
          ...(partition.type ? { FilterExpression: '#type = :type' } : {}),
          ExpressionAttributeNames: { '#k': key, ...(partition.type ? { '#type': 'type' } : {}) },
          ExpressionAttributeValues: {
            ':k': partition.key,
            ':lo': range.lo,
            ':hi': range.hi,
            ...(partition.type ? { ':type': partition.type } : {}),
          },
          ScanIndexForward: order === 'asc',
          Limit: limit - entries.length,
          ExclusiveStartKey: cursor,
        }),
      );
      for (const item of page.Items ?? []) {
        entries.push({ id: jobIdOfPartition(String(item.pk)), order: String(item.sOrder) });
      }
      cursor = page.LastEvaluatedKey;
      if (!cursor) return { entries, exhausted: true };
      if (entries.length >= limit) return { entries, exhausted: false };
    }
    return { entries, exhausted: false, frontier: String(cursor?.sOrder) };
  }

  async load(ids: string[]): Promise<AnyJob[]> {
    const found: AnyJob[] = [];
    for (let i = 0; i < ids.length; i += BATCH_GET) {
      let keys: Record<string, unknown>[] | undefined = ids.slice(i, i + BATCH_GET).map(jobItemKey);
      for (let attempt = 0; keys && keys.length > 0; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt)));
        const { Responses, UnprocessedKeys } = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys } } }),
        );
        for (const item of Responses?.[this.table] ?? []) {
          if (!isExpired(item as StoredItem)) found.push(decodeItem(item as StoredItem));
        }
        keys = UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
    return found;
  }
}
