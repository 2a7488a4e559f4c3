import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { ErrorDetail } from '../core/errors.js';

/** Why a queued submission was refused: the contract's error, as the API would have answered it. */
export interface Refusal {
  code: string;
  message: string;
  details?: ErrorDetail[] | undefined;
}

/** SQS caps a message attribute's value; the reason is for people, so its head is enough. */
const MAX_REASON_CHARS = 4096;

/**
 * The submit queue's dead-letter queue, for submissions the contract refuses: each moves there
 * as it came, with its reason (`Reason`, the error as JSON) and the id it had (`SourceMessageId`),
 * so a sender can see what was wrong and send it again fixed.
 */
export class SqsRefusedSubmissions {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string | undefined,
  ) {}

  async refuse(message: { body: string; messageId: string }, reason: Refusal): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: message.body,
        MessageAttributes: {
          Reason: { DataType: 'String', StringValue: JSON.stringify(reason).slice(0, MAX_REASON_CHARS) },
          SourceMessageId: { DataType: 'String', StringValue: message.messageId },
        },
      }),
    );
  }
}
