import {
  appendRowsSchema,
  issuesToDetails,
  submitBatchSchema,
  submitTasksSchema,
} from '../../../shared/core/schemas.js';
import { ValidationError } from './errors.js';

/**
 * The server's own checks of a body, run before it is sent (loaded on first use, so zod stays out
 * of the core bundle). A refusal is the very error the server would answer: same code, message
 * and details, status 400.
 */
function check(
  schema: typeof submitTasksSchema | typeof submitBatchSchema | typeof appendRowsSchema,
  body: unknown,
  what: string,
) {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    throw new ValidationError(
      400,
      'VALIDATION_FAILED',
      `${what} does not match the contract`,
      issuesToDetails(parsed.error),
    );
  }
}

/** A submission of either kind; one with both tasks and a batch is left for the server to refuse. */
export function checkSubmission(body: unknown): void {
  const batch = Boolean(body && typeof body === 'object' && 'batch' in body);
  if (batch && 'tasks' in (body as object)) return;
  check(batch ? submitBatchSchema : submitTasksSchema, body, 'Job');
}

export function checkRows(body: unknown): void {
  check(appendRowsSchema, body, 'Rows');
}
