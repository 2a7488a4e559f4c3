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

/**
 * On a schedule: re-send the messages that a crash between a write and a send lost. Where the
 * database has no TTL of its own (the local emulators: `PURGE_EXPIRED=true`), also delete the
 * items past their retention; in AWS, DynamoDB's TTL deletes them for free.
 */
export const handler = middy<ScheduledEvent, { jobs: number; resent: number; purged: number }>()
  .use(injectLambdaContext(logger))
  .handler(async (event) => {
    const { jobs, expired } = wiring('sweeper', log);
    // `{"afterRestart": true}`: every message and worker is known lost (the local queues keep
    // nothing across a restart), so every unfinished task resumes now, leases or not.
    const afterRestart = (event?.detail as { afterRestart?: unknown } | undefined)?.afterRestart === true;
    const result = await jobs.sweep(graceSeconds(), { afterRestart });
    const purged = process.env.PURGE_EXPIRED === 'true' ? await expired.purgeExpired(new Date()) : 0;
    logger.info('sweep done', { ...result, purged });
    return { ...result, purged };
  });
