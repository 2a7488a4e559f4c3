import { Logger } from '@aws-lambda-powertools/logger';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { clients } from '../../shared/aws/clients.js';
import { wiring } from '../../shared/aws/wiring.js';
import { JobsError } from '../../shared/core/errors.js';
import { idempotencyKeySchema, parseJson } from '../../shared/core/schemas.js';
import { engineLog, sqsBatchHandler } from '../../shared/lambda/handlers.js';
import { resourceEnv } from '../../shared/resources.js';

const logger = new Logger({ serviceName: 'jobs-submit' });
const log = engineLog(logger);

/**
 * Direct enqueue: the message body is a `POST /v1/jobs` body. The idempotency key is the
 * `IdempotencyKey` attribute or else the message id, so a redelivered message never makes a second
 * job. A message the contract refuses creates nothing and moves to the submit dead-letter queue
 * with its reason; anything else (an outage) is retried by SQS.
 */
async function submitRecord(record: SQSRecord): Promise<void> {
  const { engine } = wiring('submit', log);
  try {
    const body = parseJson(record.body);
    if (body === undefined) throw new RefusedMessage('Message body is not JSON');
    const attribute = record.messageAttributes.IdempotencyKey?.stringValue;
    if (attribute !== undefined && !idempotencyKeySchema.safeParse(attribute).success) {
      throw new RefusedMessage('IdempotencyKey attribute must be 1..256 characters');
    }
    // The attribute, else the body's own idempotencyKey, else the message id: never two jobs
    // from one message.
    const bodyKey = body && typeof body === 'object' && 'idempotencyKey' in body;
    const key = attribute ?? (bodyKey ? undefined : record.messageId);
    const { job, created } = await engine.submit(body, key);
    logger.info(created ? 'job submitted from queue' : 'queued submission replayed', {
      jobId: job.id,
      messageId: record.messageId,
    });
  } catch (error) {
    if (!(error instanceof JobsError)) throw error;
    const reason = { code: error.code, message: error.message, details: error.details };
    logger.warn('submission refused, moved to the dead-letter queue', { messageId: record.messageId, reason });
    await clients().sqs.send(
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
}

class RefusedMessage extends JobsError {
  readonly code = 'VALIDATION_FAILED';
}

export const handler = sqsBatchHandler(logger, submitRecord);
