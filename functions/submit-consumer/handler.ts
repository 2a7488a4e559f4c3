import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { sqsClient } from '../../shared/aws/clients.js';
import { SqsRefusedSubmissions } from '../../shared/aws/refused-submissions.js';
import { wiring } from '../../shared/aws/wiring.js';
import { JobsError } from '../../shared/core/errors.js';
import { type QueuedSubmission, submitQueued } from '../../shared/core/queued-submissions.js';
import { engineLog, retrySoon } from '../../shared/lambda/handlers.js';
import { resourceEnv } from '../../shared/resources.js';

const logger = new Logger({ serviceName: 'jobs-submit' });
const log = engineLog(logger);

/**
 * Senders that may submit on behalf of others (`TRUSTED_SUBMITTERS`: comma-separated owners, e.g.
 * `iam:AROA…`): only their messages may carry an `Owner` attribute.
 */
const trustedSubmitters = new Set(
  (process.env.TRUSTED_SUBMITTERS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

/** A queued submission: its body, and what SQS says of who sent it and how. */
function submission({ body, messageId, attributes, messageAttributes }: SQSRecord): QueuedSubmission {
  const { Owner: owner, IdempotencyKey: key } = messageAttributes;
  return {
    body,
    messageId,
    senderId: attributes.SenderId,
    owner: owner?.stringValue,
    idempotencyKey: key?.stringValue,
  };
}

/** A submission the contract refuses creates nothing and moves to the submit DLQ with its reason. */
async function refuse(record: SQSRecord, error: JobsError): Promise<void> {
  const reason = { code: error.code, message: error.message, details: error.details };
  logger.warn('submission refused, moved to the dead-letter queue', { messageId: record.messageId, reason });
  await new SqsRefusedSubmissions(sqsClient(), process.env[resourceEnv.queueUrl('submitDlq')]).refuse(record, reason);
}

/**
 * Direct enqueue: every submission of the batch goes in together. One the contract refuses moves
 * to the DLQ; one that fails otherwise (an outage) is reported back and comes again after a backoff.
 */
async function submitBatch(event: SQSEvent): Promise<SQSBatchResponse> {
  const { jobs } = wiring('submit', log);
  const outcomes = await submitQueued(jobs, event.Records.map(submission), trustedSubmitters);
  const failed: string[] = [];
  await Promise.all(
    event.Records.map(async (record, i) => {
      const outcome = outcomes[i]!;
      const { messageId } = record;
      if (!('error' in outcome)) {
        const message = outcome.created ? 'job submitted from queue' : 'queued submission replayed';
        return logger.info(message, { jobId: outcome.job.id, messageId });
      }
      if (outcome.error instanceof JobsError) return refuse(record, outcome.error).catch(() => failed.push(messageId));
      failed.push(messageId);
      const delaySeconds = await retrySoon(process.env[resourceEnv.queueUrl('submit')], record);
      logger.error('submission failed; it comes back after a backoff', {
        messageId,
        delaySeconds,
        error: String(outcome.error),
      });
    }),
  );
  return { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) };
}

export const handler = middy<SQSEvent, SQSBatchResponse>().use(injectLambdaContext(logger)).handler(submitBatch);
