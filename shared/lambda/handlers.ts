import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { EngineDeps } from '../core/engine.js';

/** The engine's log lines, written through a function's Powertools logger. */
export function engineLog(logger: Logger): NonNullable<EngineDeps['log']> {
  return (level, message, data) => logger[level](message, data ?? {});
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
