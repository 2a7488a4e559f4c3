import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSRecord } from 'aws-lambda';
import { wiring } from '../../shared/aws/wiring.js';
import { parseJson, workMessageSchema } from '../../shared/core/schemas.js';
import { engineLog, sqsBatchHandler } from '../../shared/lambda/handlers.js';

const logger = new Logger({ serviceName: 'jobs-dead-letters' });
const log = engineLog(logger);

/** A work message that kept failing: record its task or chunk as FAILED (`poison`) so its job can end. */
async function poisonRecord(record: SQSRecord): Promise<void> {
  const parsed = workMessageSchema.safeParse(parseJson(record.body));
  if (!parsed.success) {
    logger.error('Unreadable dead letter dropped', { messageId: record.messageId, body: record.body.slice(0, 512) });
    return;
  }
  // SQS keeps the message id when it moves a message to the dead-letter queue.
  await wiring('dead-letters', log).jobs.poison(
    parsed.data,
    'the task message kept failing and was dead-lettered',
    record.messageId,
  );
}

export const handler = sqsBatchHandler(logger, poisonRecord);
