import * as z from 'zod';
import { defineRowProcessor, ProcessorError } from '../../packages/processor/src/index.js';

/**
 * A realistic batch processor, built with the processor kit: turns bank transactions (a CSV with
 * the header `date,account,amount,currency,description`) into ledger postings. Each good row
 * becomes a posting (its result) and one line of the `postings` output file; a bad row is an error
 * whose messages say every problem found, so a user can fix the file in one go.
 *
 * The batch `context` may carry `{"ledger": "NAME"}` (default "main") and
 * `{"currencies": ["EUR", …]}` to restrict the accepted currencies.
 */

interface Posting {
  ledger: string;
  date: string;
  account: string;
  side: 'debit' | 'credit';
  amountMinor: number;
  currency: string;
  description: string;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const AMOUNT = /^-?\d{1,12}(\.\d{1,2})?$/;
const ACCOUNT = /^[A-Z]{2}\d{2}[A-Z0-9]{4,30}$/;

function check(input: unknown, context: Record<string, unknown>): { posting?: Posting; problems: string[] } {
  const problems: string[] = [];
  if (!input || typeof input !== 'object') return { problems: ['the row is not a record with named fields'] };
  const row = input as Record<string, unknown>;
  const text = (name: string) => (typeof row[name] === 'string' ? (row[name] as string).trim() : '');
  const date = text('date');
  const account = text('account').replace(/\s+/g, '').toUpperCase();
  const amount = text('amount');
  const currency = text('currency').toUpperCase();
  if (!DATE.test(date) || Number.isNaN(Date.parse(`${date}T00:00:00Z`)))
    problems.push(`date '${date}' is not YYYY-MM-DD`);
  if (!ACCOUNT.test(account)) problems.push(`account '${text('account')}' is not an IBAN`);
  if (!AMOUNT.test(amount)) problems.push(`amount '${amount}' is not a decimal with at most 2 places`);
  else if (Number(amount) === 0) problems.push('amount is zero');
  const allowed = Array.isArray(context.currencies) ? (context.currencies as unknown[]).map(String) : undefined;
  if (!/^[A-Z]{3}$/.test(currency)) problems.push(`currency '${currency}' is not an ISO 4217 code`);
  else if (allowed && !allowed.includes(currency)) problems.push(`currency ${currency} is not accepted here`);
  if (problems.length > 0) return { problems };
  const minor = Math.round(Number(amount) * 100);
  return {
    problems,
    posting: {
      ledger: typeof context.ledger === 'string' ? context.ledger : 'main',
      date,
      account,
      side: minor < 0 ? 'credit' : 'debit',
      amountMinor: Math.abs(minor),
      currency,
      description: text('description').slice(0, 140),
    },
  };
}

// The row is checked by hand rather than by a schema: its error lists every problem in words a
// user fixing the file understands, which is this processor's point.
export const postings = defineRowProcessor({
  row: z.unknown(),
  run: (input, ctx): Posting => {
    const { posting, problems } = check(input, ctx.chunk.context);
    if (!posting) {
      for (const problem of problems) ctx.message(problem);
      throw new ProcessorError('INVALID_TRANSACTION', problems.join('; '));
    }
    const { ledger, date, account, side, amountMinor, currency } = posting;
    ctx.outputs.write('postings', [ledger, date, account, side, amountMinor, currency].join(';'));
    return posting;
  },
});
