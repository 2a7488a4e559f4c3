import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { sqsClient } from '../../shared/aws/clients.js';
import { wiring } from '../../shared/aws/wiring.js';
import { ForbiddenError, JobsError } from '../../shared/core/errors.js';
import type { Jobs, PreparedJob } from '../../shared/core/jobs.js';
import { iamOwner, MAX_OWNER_LENGTH } from '../../shared/core/owners.js';
import { idempotencyKeySchema, parseJson } from '../../shared/core/schemas.js';
import { engineLog, retrySoon } from '../../shared/lambda/handlers.js';
import { resourceEnv } from '../../shared/resources.js';

const logger = new Logger({ serviceName: 'jobs-submit' });
const log = engineLog(logger);

class RefusedMessage extends JobsError {
  readonly code = 'VALIDATION_FAILED';
}

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

/**
 * Whose job a queued submission makes: the IAM principal that sent it (SQS's `SenderId`, which no
 * sender can choose), or — for a trusted sender only — the owner its `Owner` attribute names.
 */
function ownerOf(record: SQSRecord): string {
  const sender = iamOwner(record.attributes.SenderId);
  const named = record.messageAttributes.Owner?.stringValue;
  if (named === undefined) return sender;
  if (!trustedSubmitters.has(sender)) {
    throw new ForbiddenError(`The Owner attribute is taken only from trusted submitters; ${sender} is not one`);
  }
  if (named.length === 0 || named.length > MAX_OWNER_LENGTH) {
    throw new RefusedMessage(`The Owner attribute must be 1..${MAX_OWNER_LENGTH} characters`);
  }
  return named;
}

/**
 * Reads one queued submission: the body is a `POST /v1/jobs` body; the idempotency key is the
 * `IdempotencyKey` attribute, else the body's own `idempotencyKey`, else the message id, so a
 * redelivered message never makes a second job.
 */
function prepare(jobs: Jobs, record: SQSRecord): { job: PreparedJob; chosenKey: boolean } {
  const body = parseJson(record.body);
  if (body === undefined) throw new RefusedMessage('Message body is not JSON');
  const attribute = record.messageAttributes.IdempotencyKey?.stringValue;
  if (attribute !== undefined && !idempotencyKeySchema.safeParse(attribute).success) {
    throw new RefusedMessage('IdempotencyKey attribute must be 1..256 characters');
  }
  const bodyKey = body && typeof body === 'object' && 'idempotencyKey' in body;
  const job = jobs.prepare(body, ownerOf(record), attribute ?? (bodyKey ? undefined : record.messageId));
  // A key the sender chose may be replayed by it; the message id only by a rare redelivery.
  return { job, chosenKey: attribute !== undefined || Boolean(bodyKey) };
}

/** A submission the contract refuses creates nothing and moves to the submit DLQ with its reason. */
async function refuse(record: SQSRecord, error: JobsError): Promise<void> {
  const reason = { code: error.code, message: error.message, details: error.details };
  logger.warn('submission refused, moved to the dead-letter queue', { messageId: record.messageId, reason });
  await sqsClient().send(
    new SendMessageCommand({
      QueueUrl: process.env[resourceEnv.queueUrl('submitDlq')],
      MessageBody: record.body,
      MessageAttributes: {
        Reason: { DataType: 'String', StringValue: JSON.stringify(reason).slice(0, 4096) },
        SourceMessageId: { DataType: 'String', StringValue: record.messageId },
      },
    }),
  );
}

/**
 * Direct enqueue. The whole batch is prepared first, so the first task messages of every job in
 * it go out ten to an SQS request; anything that fails for another reason than the contract (an
 * outage) is reported back and retried by SQS.
 */
async function submitBatch(event: SQSEvent): Promise<SQSBatchResponse> {
  const { jobs } = wiring('submit', log);
  const failed: string[] = [];
  const settle = async (record: SQSRecord, error: unknown) => {
    if (!(error instanceof JobsError)) {
      failed.push(record.messageId);
      const delaySeconds = await retrySoon(process.env[resourceEnv.queueUrl('submit')], record);
      logger.error('submission failed; it comes back after a backoff', {
        messageId: record.messageId,
        delaySeconds,
        error: String(error),
      });
      return;
    }
    await refuse(record, error).catch(() => failed.push(record.messageId));
  };

  const ready: { record: SQSRecord; job: PreparedJob; chosenKey: boolean }[] = [];
  for (const record of event.Records) {
    try {
      ready.push({ record, ...prepare(jobs, record) });
    } catch (error) {
      await settle(record, error);
    }
  }
  if (ready.length) {
    try {
      const outcomes = await jobs.commit(
        ready.map((r) => r.job),
        { lookUp: ready.map((r) => r.chosenKey) },
      );
      await Promise.all(
        outcomes.map(async (outcome, i) => {
          const { record } = ready[i] as (typeof ready)[number];
          if ('error' in outcome) return settle(record, outcome.error);
          logger.info(outcome.created ? 'job submitted from queue' : 'queued submission replayed', {
            jobId: outcome.job.id,
            messageId: record.messageId,
          });
        }),
      );
    } catch (error) {
      // The messages could not be sent, so nothing was written: all of these come back later.
      for (const { record } of ready) await settle(record, error);
    }
  }
  return { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) };
}

export const handler = middy<SQSEvent, SQSBatchResponse>().use(injectLambdaContext(logger)).handler(submitBatch);
