import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import type { IndexDeclaration } from '../resources.js';

/**
 * The request meter: every AWS call the system makes, counted at the SDK client layer with the
 * units AWS bills it by. Install it with `installMeter()` and every client `createClients()` builds
 * afterwards reports to it (handlers and the local runtime alike). It asks DynamoDB for consumed
 * capacity (and Put for the old item, to count index writes), and otherwise follows AWS's rules:
 * - DynamoDB writes: 1 WRU per started KB of the larger of the item before and after; a refused
 *   conditional write is billed too; each index entry added or removed is another write;
 * - SQS: one request per started 64 KiB of payload, a batch of ten is one request;
 * - S3: PUT/COPY/POST/LIST class apart from GET class.
 * Lambda invocations, GB-seconds and API Gateway requests are added by the local runtime.
 */

export interface Usage {
  calls: number;
  /** Calls that came back with an error (they may still be billed). */
  errors: number;
  wru: number;
  rru: number;
  indexWrites: number;
  sqsRequests: number;
  /** SQS receives that returned no message (the event source's idle polling). */
  emptyReceives: number;
  /**
   * Strongly consistent GetItems that found nothing: in a run of jobs, a worker looking for a job
   * not written yet (the wait issue 19 removes); a read of a missing job otherwise.
   */
  readMisses: number;
  s3Put: number;
  s3Get: number;
  lambdaInvocations: number;
  lambdaGbSeconds: number;
  apiRequests: number;
}

const empty = (): Usage => ({
  calls: 0,
  errors: 0,
  wru: 0,
  rru: 0,
  indexWrites: 0,
  sqsRequests: 0,
  emptyReceives: 0,
  readMisses: 0,
  s3Put: 0,
  s3Get: 0,
  lambdaInvocations: 0,
  lambdaGbSeconds: 0,
  apiRequests: 0,
});

export class Meter {
  private readonly operations = new Map<string, Usage>();
  /**
   * Every index Query answered while installed: which partition it read and the items it got back,
   * so a test can show whose index entries a search touched (tenancy).
   */
  readonly indexReads: { index: string; partition: unknown; items: Record<string, unknown>[] }[] = [];
  /** Index declarations by physical table name, to count index writes. */
  readonly indexes = new Map<string, IndexDeclaration[]>();

  add(operation: string, usage: Partial<Usage>): void {
    const entry = this.operations.get(operation) ?? empty();
    for (const [key, value] of Object.entries(usage) as [keyof Usage, number][]) entry[key] += value;
    this.operations.set(operation, entry);
  }

  byOperation(): Record<string, Usage> {
    return Object.fromEntries([...this.operations].sort(([a], [b]) => a.localeCompare(b)));
  }

  total(): Usage {
    const sum = empty();
    for (const usage of this.operations.values()) {
      for (const key of Object.keys(sum) as (keyof Usage)[]) sum[key] += usage[key];
    }
    return sum;
  }

  reset(): void {
    this.operations.clear();
    this.indexReads.length = 0;
  }
}

let installed: Meter | undefined;

export function installMeter(meter: Meter): void {
  installed = meter;
}

export function uninstallMeter(): void {
  installed = undefined;
}

export function currentMeter(): Meter | undefined {
  return installed;
}

const SQS_CHUNK = 64 * 1024;
const S3_GET_CLASS = new Set(['GetObjectCommand', 'HeadObjectCommand', 'SelectObjectContentCommand']);

// biome-ignore lint/suspicious/noExplicitAny: SDK command inputs and outputs of every shape.
type Any = Record<string, any>;

/** DynamoDB's item size: attribute names plus values (numbers approximated by their digits). */
export function dynamoItemSize(item: Any | undefined): number {
  if (!item) return 0;
  const attributes = isMarshalled(item) ? item : marshall(item, { removeUndefinedValues: true });
  let size = 0;
  for (const [name, value] of Object.entries(attributes)) size += Buffer.byteLength(name) + valueSize(value as Any);
  return size;
}

function valueSize(value: Any): number {
  if ('S' in value) return Buffer.byteLength(value.S);
  if ('N' in value) return Math.ceil(String(value.N).replace(/^-|\.|e.*$/gi, '').length / 2) + 1;
  if ('B' in value) return value.B.length ?? 0;
  if ('BOOL' in value || 'NULL' in value) return 1;
  if ('L' in value) return 3 + (value.L as Any[]).reduce((n: number, v: Any) => n + 1 + valueSize(v), 0);
  if ('M' in value) {
    return 3 + Object.entries(value.M as Any).reduce((n, [k, v]) => n + 1 + Buffer.byteLength(k) + valueSize(v), 0);
  }
  if ('SS' in value) return (value.SS as string[]).reduce((n, s) => n + Buffer.byteLength(s), 0);
  if ('NS' in value) return (value.NS as string[]).reduce((n, s) => n + s.length, 0);
  return 0;
}

function isMarshalled(item: Any): boolean {
  const first = Object.values(item)[0];
  return Boolean(
    first &&
      typeof first === 'object' &&
      Object.keys(first).length === 1 &&
      /^(S|N|B|BOOL|NULL|L|M|SS|NS|BS)$/.test(Object.keys(first)[0] ?? ''),
  );
}

function native(item: Any | undefined): Any | undefined {
  if (!item) return undefined;
  return isMarshalled(item) ? unmarshall(item as never) : item;
}

/** Index entries written when an item changes from `before` to `after` (keys-only projections). */
function indexWrites(indexes: IndexDeclaration[], before: Any | undefined, after: Any | undefined): number {
  let writes = 0;
  for (const index of indexes) {
    const key = (item: Any | undefined) => {
      if (!item) return undefined;
      const parts = [index.partitionKey.name, index.sortKey?.name].filter(Boolean).map((name) => item[name as string]);
      return parts.every((p) => p !== undefined) ? JSON.stringify(parts) : undefined;
    };
    const was = key(before);
    const is = key(after);
    if (was === is) continue;
    writes += (was ? 1 : 0) + (is ? 1 : 0);
  }
  return writes;
}

const DYNAMO_WRITES = new Set(['PutItemCommand', 'UpdateItemCommand', 'DeleteItemCommand', 'BatchWriteItemCommand']);
const DYNAMO_READS = new Set(['GetItemCommand', 'QueryCommand', 'ScanCommand', 'BatchGetItemCommand']);

/** Adds the meter to a client's middleware stack (a no-op while no meter is installed). */
export function meterClient(client: { middlewareStack: Any }): void {
  client.middlewareStack.add(
    (next: (args: Any) => Promise<Any>, context: Any) => async (args: Any) => {
      const meter = installed;
      if (!meter) return next(args);
      const service = String(context.clientName ?? '').replace(/Client$/, '');
      const command = String(context.commandName ?? '');
      const operation = `${service}.${command.replace(/Command$/, '')}`;
      const input = args.input as Any;
      if (service === 'DynamoDB' && (DYNAMO_WRITES.has(command) || DYNAMO_READS.has(command))) {
        input.ReturnConsumedCapacity ??= 'INDEXES';
        if (command === 'PutItemCommand') input.ReturnValues ??= 'ALL_OLD';
      }
      try {
        const result = await next(args);
        meter.add(operation, { calls: 1, ...billed(meter, service, command, input, result.output as Any) });
        if (command === 'QueryCommand' && input.IndexName) {
          const values = (input.ExpressionAttributeValues ?? {}) as Any;
          meter.indexReads.push({
            index: String(input.IndexName),
            partition: values[':k'],
            items: ((result.output as Any)?.Items ?? []).map((item: Any) => native(item) ?? {}),
          });
        }
        return result;
      } catch (error) {
        meter.add(operation, { calls: 1, errors: 1, ...billedError(service, command, input, error) });
        throw error;
      }
    },
    { step: 'initialize', name: 'jobsRequestMeter', override: true },
  );
}

function billed(meter: Meter, service: string, command: string, input: Any, output: Any): Partial<Usage> {
  switch (service) {
    case 'DynamoDB': {
      const consumed = ([] as Any[]).concat(output?.ConsumedCapacity ?? []);
      const table = consumed.reduce((n, c) => n + (c.Table?.CapacityUnits ?? c.CapacityUnits ?? 0), 0);
      const reportedIndexes = consumed.reduce(
        (n, c) =>
          n +
          Object.values((c.GlobalSecondaryIndexes ?? {}) as Record<string, Any>).reduce(
            (m, i) => m + (i.CapacityUnits ?? 0),
            0,
          ),
        0,
      );
      if (DYNAMO_READS.has(command)) {
        const missed = command === 'GetItemCommand' && input.ConsistentRead === true && !output?.Item;
        return { rru: table + reportedIndexes, ...(missed ? { readMisses: 1 } : {}) };
      }
      let indexes = reportedIndexes;
      if (!indexes && command === 'PutItemCommand') {
        indexes = indexWrites(meter.indexes.get(input.TableName) ?? [], native(output?.Attributes), native(input.Item));
      }
      return { wru: table || Math.ceil(dynamoItemSize(input.Item) / 1024) || 1, indexWrites: indexes };
    }
    case 'SQS': {
      if (command === 'ReceiveMessageCommand') {
        const messages = (output?.Messages ?? []) as Any[];
        const bytes = messages.reduce((n, m) => n + Buffer.byteLength(m.Body ?? ''), 0);
        return { sqsRequests: Math.max(1, Math.ceil(bytes / SQS_CHUNK)), emptyReceives: messages.length ? 0 : 1 };
      }
      const bodies =
        command === 'SendMessageBatchCommand'
          ? (input.Entries ?? []).map((e: Any) => e.MessageBody)
          : [input.MessageBody ?? ''];
      const bytes = bodies.reduce((n: number, b: string) => n + Buffer.byteLength(b ?? ''), 0);
      return { sqsRequests: Math.max(1, Math.ceil(bytes / SQS_CHUNK)) };
    }
    case 'S3':
      return S3_GET_CLASS.has(command) ? { s3Get: 1 } : { s3Put: 1 };
    default:
      return {};
  }
}

function billedError(service: string, command: string, input: Any, error: unknown): Partial<Usage> {
  // A refused conditional write is billed like the write it would have been.
  if (
    service === 'DynamoDB' &&
    (error as Error).name === 'ConditionalCheckFailedException' &&
    DYNAMO_WRITES.has(command)
  ) {
    return { wru: Math.max(1, Math.ceil(dynamoItemSize(input.Item) / 1024)) };
  }
  if (service === 'SQS') return { sqsRequests: 1 };
  if (service === 'S3') return S3_GET_CLASS.has(command) ? { s3Get: 1 } : { s3Put: 1 };
  return {};
}
