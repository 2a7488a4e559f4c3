import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { ChunkCommit, Tally } from '../core/batches/model.js';
import { decodeCommit, encodeCommit, tallyOfChunk } from '../core/batches/rules.js';
import { expiresAfter, jobPartition, TALLY_SORT_PREFIX, tallyGroupOfSortKey, tallyItemKey } from '../core/keys.js';
import type { TallyStore } from '../core/ports.js';

/** Tallies outlive their job by this margin, then DynamoDB's TTL deletes them for free. */
const RETENTION_MARGIN_DAYS = 30;

type TallyItem = Record<string, unknown> & {
  pk: string;
  sk: string;
  closed?: boolean;
  firstAt?: string;
  lastAt?: string;
};

/**
 * A batch's chunk commits, one item per group of chunks beside the job item (`pk` of the job,
 * `sk` TALLY#group: shared/core/keys.ts). Chunk `i` is committed by one UpdateItem that sets attribute `c<i>` (the
 * winning attempt's file and its row counts) only if it is absent and the tally is not closed.
 * Counts are summed from these attributes, so a chunk counts once by construction: exactly-once
 * with a single-item conditional write, no transaction, no per-row write.
 */
export class DynamoTallyStore implements TallyStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly retentionDays = 30,
  ) {}

  async commit(
    jobId: string,
    chunk: number,
    commit: ChunkCommit,
  ): Promise<{ committed: true; tally: Tally } | { committed: false }> {
    const group = tallyOfChunk(chunk);
    const now = new Date();
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: tallyItemKey(jobId, group),
          UpdateExpression:
            'SET #c = :commit, firstAt = if_not_exists(firstAt, :now), lastAt = :now, expiresAt = :expires',
          ConditionExpression: 'attribute_not_exists(#c) AND attribute_not_exists(closed)',
          ExpressionAttributeNames: { '#c': `c${chunk}` },
          ExpressionAttributeValues: {
            ':commit': encodeCommit(commit),
            ':now': now.toISOString(),
            ':expires': this.expiresAt(now),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { committed: true, tally: decode(Attributes as TallyItem) };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // The SDK may have retried our own committed write: then the commit found is ours.
      const tally = await this.read(jobId, group);
      const found = tally?.commits.get(chunk);
      if (tally && found?.token === commit.token) return { committed: true, tally };
      return { committed: false };
    }
  }

  async read(jobId: string, group: number): Promise<Tally | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: tallyItemKey(jobId, group), ConsistentRead: true }),
    );
    return Item ? decode(Item as TallyItem) : undefined;
  }

  async all(jobId: string): Promise<Tally[]> {
    const tallies: Tally[] = [];
    let cursor: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :tally)',
          ExpressionAttributeValues: { ':pk': jobPartition(jobId), ':tally': TALLY_SORT_PREFIX },
          ConsistentRead: true,
          ExclusiveStartKey: cursor,
        }),
      );
      for (const item of page.Items ?? []) tallies.push(decode(item as TallyItem));
      cursor = page.LastEvaluatedKey;
    } while (cursor);
    return tallies.sort((a, b) => a.group - b.group);
  }

  async close(jobId: string, groups: number): Promise<void> {
    const now = new Date();
    const pending = Array.from({ length: groups }, (_, group) => group);
    const closeOne = async () => {
      for (let group = pending.shift(); group !== undefined; group = pending.shift()) {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: tallyItemKey(jobId, group),
            UpdateExpression: 'SET closed = :true, expiresAt = :expires',
            ExpressionAttributeValues: { ':true': true, ':expires': this.expiresAt(now) },
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, groups) }, closeOne));
  }

  private expiresAt(now: Date): number {
    return expiresAfter(now, this.retentionDays + RETENTION_MARGIN_DAYS);
  }
}

function decode(item: TallyItem): Tally {
  const commits = new Map<number, ChunkCommit>();
  for (const [name, value] of Object.entries(item)) {
    if (/^c\d+$/.test(name) && typeof value === 'string') commits.set(Number(name.slice(1)), decodeCommit(value));
  }
  return {
    group: tallyGroupOfSortKey(item.sk),
    commits,
    closed: item.closed === true,
    ...(item.firstAt ? { firstAt: item.firstAt } : {}),
    ...(item.lastAt ? { lastAt: item.lastAt } : {}),
  };
}
