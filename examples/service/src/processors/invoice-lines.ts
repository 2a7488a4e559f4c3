import { defineRowProcessor, ProcessorError } from '@serverless-jobs/processor';
import * as z from 'zod';

/**
 * Prices invoice lines, one batch row at a time. The rows come from a CSV with the header
 * `invoice,sku,description,quantity,unit_price`, so every field arrives as a string: the schema
 * parses them into numbers and amounts in minor units (cents), and a row it refuses fails alone
 * (`INVALID_ROW`) while the others run. Each priced line is one line of the output `priced`.
 */
const row = z.object({
  invoice: z.string().regex(/^INV-\d{4}$/, 'must be INV- and four digits'),
  sku: z.string().regex(/^[A-Z]{3}-\d{3}$/, 'must be three letters, a hyphen and three digits'),
  description: z.string().max(200).default(''),
  quantity: z.coerce.number().int().positive(),
  unit_price: z
    .string()
    .regex(/^\d{1,9}(\.\d{1,2})?$/, 'must be a decimal with at most 2 places')
    .transform((price) => Math.round(Number(price) * 100)),
});

/** The batch's `context`: one currency and tax rate for the whole file, and the SKUs no longer sold. */
const context = z.object({
  currency: z.string().regex(/^[A-Z]{3}$/),
  taxPercent: z.number().min(0).max(100),
  discontinued: z.array(z.string()).default([]),
});

export const handler = defineRowProcessor({
  row,
  // Rows only compute here; a processor calling a price service would raise this to overlap its calls.
  concurrency: 4,
  run: (line, ctx) => {
    const settings = context.safeParse(ctx.chunk.context);
    // The same for every row of the batch, so retrying cannot help: a final error.
    if (!settings.success) throw new ProcessorError('BAD_CONTEXT', z.prettifyError(settings.error));
    const { currency, taxPercent, discontinued } = settings.data;
    if (discontinued.includes(line.sku)) {
      throw new ProcessorError('DISCONTINUED_SKU', `${line.sku} is no longer sold`);
    }
    const net = line.quantity * line.unit_price;
    const tax = Math.round((net * taxPercent) / 100);
    ctx.outputs.write('priced', [line.invoice, line.sku, line.quantity, net, tax, net + tax, currency].join(','));
    return { invoice: line.invoice, sku: line.sku, net, tax, gross: net + tax, currency };
  },
});
