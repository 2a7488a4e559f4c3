import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSRecord } from 'aws-lambda';
import { lambdaClient } from '../../shared/aws/clients.js';
import { TargetInvoker } from '../../shared/aws/processor-invoker.js';
import { type WiringParts, wiring } from '../../shared/aws/wiring.js';
import { parseJson, workMessageSchema } from '../../shared/core/schemas.js';
import { engineLog, hideMessage, retrySoon, sqsBatchHandler } from '../../shared/lambda/handlers.js';
import { resourceEnv } from '../../shared/resources.js';

const logger = new Logger({ serviceName: 'jobs-worker' });
const log = engineLog(logger);

/** Only the worker calls processors, so only its bundle holds the Lambda client. */
const parts: WiringParts = { invoker: (env) => new TargetInvoker(lambdaClient(), env) };

/** Thrown so the batch processor reports the record as failed and SQS brings it back later. */
class RetryLater extends Error {}

function setVisibility(record: SQSRecord, seconds: number) {
  return hideMessage(process.env[resourceEnv.queueUrl('work')], record, seconds);
}

/** What a plan step keeps back from its timeout to send its last messages and its continuation. */
const PLAN_MARGIN_MS = 60_000;

/**
 * One work message: a task, a batch chunk, or a batch step (plan, finalize). The message is the
 * lease: while a processor runs, its visibility is the processor's timeout plus a margin, so a
 * worker that dies loses the work only for that long. A retry with backoff is a visibility change
 * plus a reported failure.
 */
async function runRecord(record: SQSRecord, context?: Context): Promise<void> {
  try {
    await handleMessage(record, context);
  } catch (error) {
    if (error instanceof RetryLater) throw error;
    // An outage outlasted the SDK's retries: a live lease holds the early duplicate, a committed
    // outcome drops it.
    const delaySeconds = await retrySoon(process.env[resourceEnv.queueUrl('work')], record);
    logger.warn('work message failed; it comes back after a backoff', {
      messageId: record.messageId,
      delaySeconds,
      error: String(error),
    });
    throw error;
  }
}

async function handleMessage(record: SQSRecord, context?: Context): Promise<void> {
  const parsed = workMessageSchema.safeParse(parseJson(record.body));
  if (!parsed.success) {
    logger.error('Unreadable work message dropped', { messageId: record.messageId, body: record.body.slice(0, 512) });
    return;
  }
  const sentAt = Number(record.attributes.SentTimestamp) || undefined;
  const verdict = await wiring('worker', log, parts).jobs.run(
    parsed.data,
    {
      messageId: record.messageId,
      receiveCount: Number(record.attributes.ApproximateReceiveCount) || 1,
      ...(sentAt !== undefined ? { sentAt } : {}),
    },
    {
      onLease: (seconds: number) => setVisibility(record, seconds).then(() => undefined),
      ...(context
        ? {
            // Stop waiting on the processor while there is still time to record the outcome.
            signal: AbortSignal.timeout(Math.max(1000, context.getRemainingTimeInMillis() - 10_000)),
            // A plan step leaves time to send its slice's last messages and the step that goes on.
            planDeadline: Date.now() + context.getRemainingTimeInMillis() - PLAN_MARGIN_MS,
          }
        : {}),
    },
  );
  if (verdict.kind === 'retry') {
    await setVisibility(record, verdict.delaySeconds);
    throw new RetryLater(`retry in ${verdict.delaySeconds} s`);
  }
  // A stale attempt: the message is the newer attempt's lease now. Reporting it failed keeps it.
  if (verdict.kind === 'keep') throw new RetryLater('stale attempt; message left to the current lease');
}

export const handler = sqsBatchHandler(logger, runRecord);
