import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { WorkQueue } from '../core/ports.js';
import type { WorkMessage } from '../core/schemas.js';

/** SQS takes at most ten messages per SendMessageBatch request. */
export const MAX_BATCH = 10;
/** SQS refuses a batch whose bodies add up to more than 256 KiB; stay under with room for attributes. */
export const MAX_BATCH_BYTES = 250_000;
const MAX_RETRIES = 5;

/**
 * Message bodies grouped into SendMessageBatch requests, in order: a request is closed at ten
 * bodies, or before a body that would take it past `MAX_BATCH_BYTES` (a body larger than that on
 * its own still goes, alone, for SQS to judge).
 */
export function sendBatches(bodies: readonly string[]): string[][] {
  const batches: string[][] = [];
  let batch: string[] = [];
  let bytes = 0;
  for (const body of bodies) {
    const size = Buffer.byteLength(body);
    if (batch.length === MAX_BATCH || (batch.length > 0 && bytes + size > MAX_BATCH_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(body);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** A delay as SQS takes it: whole seconds from 0 to 900 (its most); none when not asked for. */
export function sendDelay(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : Math.max(0, Math.min(900, Math.round(seconds)));
}

/** Work messages on SQS, up to ten per request (a batch costs one request per 64 KiB). */
export class SqsWorkQueue implements WorkQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(messages: WorkMessage[], options: { delaySeconds?: number } = {}): Promise<void> {
    const batches = sendBatches(messages.map((message) => JSON.stringify(message)));
    await Promise.all(batches.map((bodies) => this.sendBatch(bodies, sendDelay(options.delaySeconds))));
  }

  /** Entries SQS could not take are sent again; a batch that keeps failing throws (the caller retries). */
  private async sendBatch(bodies: string[], delaySeconds: number | undefined): Promise<void> {
    let pending = bodies.map((body, i) => ({
      Id: String(i),
      MessageBody: body,
      ...(delaySeconds ? { DelaySeconds: delaySeconds } : {}),
    }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt >= MAX_RETRIES) throw new Error(`SQS refused ${pending.length} work messages`);
      const { Failed = [] } = await this.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending }),
      );
      const failed = new Set(Failed.map((f) => f.Id));
      pending = pending.filter((entry) => failed.has(entry.Id));
      if (pending.length) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
    }
  }
}
