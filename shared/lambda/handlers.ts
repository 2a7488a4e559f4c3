import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { ChangeMessageVisibilityCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { sqsClient } from '../aws/clients.js';
import { type Backoff, backoffDelay } from '../core/backoff.js';
import type { TaskEngineDeps } from '../core/tasks/engine.js';

/** The engine's log lines, written through a function's Powertools logger. */
export function engineLog(logger: Logger): NonNullable<TaskEngineDeps['log']> {
  return (level, message, data) => logger[level](message, data ?? {});
}

/** Hides a received message for `seconds` (SQS's limits: 0 to 12 hours). */
export function hideMessage(queueUrl: string | undefined, record: SQSRecord, seconds: number): Promise<unknown> {
  return sqsClient().send(
    new ChangeMessageVisibilityCommand({
      QueueUrl: queueUrl,
      ReceiptHandle: record.receiptHandle,
      VisibilityTimeout: Math.max(0, Math.min(43_200, Math.ceil(seconds))),
    }),
  );
}

/**
 * When handling a message fails for a reason no use case decided (an AWS outage that outlasted the
 * SDK's retries), the message comes back after this backoff by its receive count — 1–2 s at first,
 * at most 15 min — instead of after its queue's visibility timeout (30 min for work). Early
 * redelivery is always safe here: every handler takes a duplicate in its stride.
 */
const OUTAGE_BACKOFF: Backoff = { type: 'exponential', delaySeconds: 2, maxSeconds: 900, jitter: true };

/** Schedules a failed message's return after the outage backoff; returns the delay. */
export async function retrySoon(queueUrl: string | undefined, record: SQSRecord): Promise<number> {
  const receives = Number(record.attributes.ApproximateReceiveCount) || 1;
  const delaySeconds = backoffDelay(OUTAGE_BACKOFF, receives);
  // If even this fails, the queue's visibility timeout brings the message back.
  await hideMessage(queueUrl, record, delaySeconds).catch(() => undefined);
  return delaySeconds;
}

/**
 * An SQS-triggered function: records run in parallel, a record whose handler throws is reported
 * in the partial batch response (SQS brings it back), the others are deleted. One processor per
 * module instance, which is one per Lambda sandbox.
 */
export function sqsBatchHandler(logger: Logger, handleRecord: (record: SQSRecord, context?: Context) => Promise<void>) {
  const processor = new BatchProcessor(EventType.SQS);
  return middy<SQSEvent, SQSBatchResponse>()
    .use(injectLambdaContext(logger))
    .handler((event, context) =>
      processPartialResponse(event, handleRecord, processor, {
        context,
        processInParallel: true,
        throwOnFullBatchFailure: false,
      }),
    );
}
