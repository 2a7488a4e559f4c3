import { createHash } from 'node:crypto';
import { defineTaskProcessor, ProcessorError } from '@serverless-jobs/processor';
import * as z from 'zod';

/**
 * Renders one invoice document per task. A real renderer is a remote service that is sometimes
 * unavailable; here `unavailableAttempts` plays that outage deterministically: the first N
 * attempts throw a retryable `ProcessorError`, so the worker retries the task by its processor's
 * policy (`maxAttempts`, `backoff`) and a later attempt succeeds.
 */
const input = z.object({
  invoice: z.string().regex(/^INV-\d{4}$/, 'must be INV- and four digits'),
  customer: z.string().min(1).max(200),
  currency: z.string().regex(/^[A-Z]{3}$/),
  /** Gross amount in minor units (cents). */
  gross: z.number().int().min(0),
  unavailableAttempts: z.number().int().min(0).max(10).default(0),
});

export const handler = defineTaskProcessor({
  input,
  run: ({ invoice, customer, currency, gross, unavailableAttempts }, ctx) => {
    if (ctx.attempt <= unavailableAttempts) {
      ctx.log.warn('renderer unavailable', { invoice, attempt: ctx.attempt });
      throw new ProcessorError('RENDERER_UNAVAILABLE', `the renderer is unavailable (attempt ${ctx.attempt})`, {
        retryable: true,
      });
    }
    const document = [
      `Invoice ${invoice}`,
      `Customer: ${customer}`,
      `Total: ${(gross / 100).toFixed(2)} ${currency}`,
    ].join('\n');
    ctx.log('rendered', { invoice, attempt: ctx.attempt });
    return {
      invoice,
      attempt: ctx.attempt,
      bytes: Buffer.byteLength(document),
      sha256: createHash('sha256').update(document).digest('hex'),
    };
  },
});
