import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { ScheduledEvent } from 'aws-lambda';
import { wiring } from '../../shared/aws/wiring.js';
import { engineLog } from '../../shared/lambda/handlers.js';

const logger = new Logger({ serviceName: 'jobs-sweeper' });
const log = engineLog(logger);

/** Seconds past the moment a task's message was due back before it counts as lost. */
const graceSeconds = () => Number(process.env.SWEEP_GRACE_SECONDS ?? 300);

/** On a schedule: re-send the task messages that a crash between a write and a send lost. */
export const handler = middy<ScheduledEvent, { jobs: number; resent: number }>()
  .use(injectLambdaContext(logger))
  .handler(async () => {
    const result = await wiring('sweeper', log).engine.sweep(graceSeconds());
    logger.info('sweep done', result);
    return result;
  });
