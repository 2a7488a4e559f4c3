import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SubmitBatchBody, SubmitTasksBody } from './types.js';

export interface EnqueueOptions {
  /**
   * Makes the message safe to send again: the same key answers the same job. A random one when
   * absent, so the SDK's own retries of the send never make two jobs.
   */
  idempotencyKey?: string;
  /** Whose job it is; taken only from a trusted submitter (the stack's TRUSTED_SUBMITTERS). */
  owner?: string;
  /** Check the body with the server's schemas before sending it (default true). */
  validate?: boolean;
}

/**
 * Submits a job through the submit queue rather than the HTTP API: for a sender that has SQS
 * rights and wants no reply. The job belongs to the sender's IAM principal (or `owner`); a body the
 * contract refuses creates nothing and goes to the submit dead-letter queue with its reason.
 */
export async function enqueue(
  sqs: SQSClient,
  queueUrl: string,
  body: SubmitTasksBody | SubmitBatchBody,
  options: EnqueueOptions = {},
): Promise<{ messageId: string; idempotencyKey: string }> {
  if (options.validate ?? true) (await import('./validate.js')).checkSubmission(body);
  const idempotencyKey = options.idempotencyKey ?? body.idempotencyKey ?? globalThis.crypto.randomUUID();
  const sent = await sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify(body),
      MessageAttributes: {
        IdempotencyKey: { DataType: 'String', StringValue: idempotencyKey },
        ...(options.owner !== undefined ? { Owner: { DataType: 'String', StringValue: options.owner } } : {}),
      },
    }),
  );
  return { messageId: sent.MessageId ?? '', idempotencyKey };
}
