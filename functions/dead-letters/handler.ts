import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { wiring } from '../../shared/aws/wiring.js';
import { parseJson, taskMessageSchema } from '../../shared/core/schemas.js';

const logger = new Logger({ serviceName: 'jobs-dead-letters' });
const processor = new BatchProcessor(EventType.SQS);
const engineLog = (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) =>
  logger[level](message, data ?? {});

/** A task message that kept failing: record the task as FAILED (`poison`) so its job can end. */
async function poisonRecord(record: SQSRecord): Promise<void> {
  const parsed = taskMessageSchema.safeParse(parseJson(record.body));
  if (!parsed.success) {
    logger.error('Unreadable dead letter dropped', { messageId: record.messageId, body: record.body.slice(0, 512) });
    return;
  }
  const { engine } = wiring('dead-letters', engineLog);
  await engine.poison(
    parsed.data,
    `delivery failed ${record.attributes.ApproximateReceiveCount ?? 'many'} times; dead-lettered`,
  );
}

export const handler = middy<SQSEvent, SQSBatchResponse>()
  .use(injectLambdaContext(logger))
  .handler((event, context) =>
    processPartialResponse(event, poisonRecord, processor, {
      context,
      processInParallel: true,
      throwOnFullBatchFailure: false,
    }),
  );
