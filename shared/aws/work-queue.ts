import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { WorkQueue } from '../core/ports.js';
import type { TaskMessage } from '../core/schemas.js';

const MAX_BATCH = 10;
const MAX_RETRIES = 5;

/** Task messages on SQS, ten per request (a batch costs one request per 64 KiB). */
export class SqsWorkQueue implements WorkQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(messages: TaskMessage[]): Promise<void> {
    const batches: TaskMessage[][] = [];
    for (let i = 0; i < messages.length; i += MAX_BATCH) batches.push(messages.slice(i, i + MAX_BATCH));
    await Promise.all(batches.map((batch) => this.sendBatch(batch)));
  }

  /** Entries SQS could not take are sent again; a batch that keeps failing throws (the caller retries). */
  private async sendBatch(batch: TaskMessage[]): Promise<void> {
    let pending = batch.map((message, i) => ({ Id: String(i), MessageBody: JSON.stringify(message) }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt >= MAX_RETRIES) throw new Error(`SQS refused ${pending.length} task messages`);
      const { Failed = [] } = await this.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending }),
      );
      const failed = new Set(Failed.map((f) => f.Id));
      pending = pending.filter((entry) => failed.has(entry.Id));
      if (pending.length) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
    }
  }
}
