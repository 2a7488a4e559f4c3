import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AnyJobView,
  type BatchView,
  JobsApiError,
  JobsClient,
  type JobView,
  type RowView,
} from '@serverless-jobs/client';
import { fileData } from '@serverless-jobs/client/node';

/** The CSV the service prices when given no other (`data/invoice-lines.csv`). */
export const SAMPLE_CSV = fileURLToPath(new URL('../data/invoice-lines.csv', import.meta.url));

/** Customers by invoice, as the service's billing system knows them. */
export const CUSTOMERS: Record<string, string> = {
  'INV-0001': 'Acme GmbH',
  'INV-0002': 'Globex SA',
  'INV-0003': 'Initech Ltd',
};

/**
 * The renderer plays unavailable on this invoice's first two attempts (the processor's
 * `unavailableAttempts`), so its task succeeds on the third of its `maxAttempts` (3).
 */
export const FLAKY_INVOICE = 'INV-0001';

/** One line of the batch's `priced` output: `invoice,sku,quantity,net,tax,gross,currency`. */
export interface PricedLine {
  invoice: string;
  sku: string;
  quantity: number;
  net: number;
  tax: number;
  gross: number;
  currency: string;
}

export interface InvoiceRun {
  batch: BatchView;
  failedRows: RowView[];
  priced: PricedLine[];
  /** The render job; none when the batch did not succeed (there is nothing sure to render). */
  job?: JobView;
}

export interface RunOptions {
  /** The invoice lines to price (CSV). */
  csv?: string;
  /** For each of the batch and the job (default 2 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Told of each step and of every change the long polls see. */
  progress?: (message: string) => void;
}

/**
 * What the service does: prices a file of invoice lines as a batch (uploaded as CSV), reads its
 * failed rows and its `priced` output, then renders one invoice per invoice number of that output
 * as a job of tasks, and waits for it.
 */
export async function runInvoices(jobs: JobsClient, options: RunOptions = {}): Promise<InvoiceRun> {
  const { csv = SAMPLE_CSV, timeoutMs = 120_000, signal, progress = () => {} } = options;
  const watch = (view: AnyJobView) =>
    progress(
      `${view.kind === 'batch' ? 'batch' : 'job'} ${view.id}: ${view.status}, ${Math.round(view.progress * 100)}%`,
    );

  const submitted = await jobs.submitBatch(
    {
      type: 'invoice.lines',
      meta: { source: 'example-service' },
      batch: {
        processor: 'invoice.lines',
        upload: true,
        input: { format: 'csv' },
        chunkSize: 5,
        maxFailedRows: 5,
        context: { currency: 'EUR', taxPercent: 19, discontinued: ['FAX-001'] },
      },
    },
    { signal },
  );
  await jobs.upload(submitted, await fileData(csv), {
    signal,
    onProgress: ({ loaded, total }) => progress(`uploading ${csv}: ${loaded}/${total} bytes`),
  });
  await jobs.release(submitted.id, { signal });
  progress(`batch ${submitted.id}: uploaded and released`);

  const batch = await jobs.wait(submitted.id, { timeoutMs, signal, onUpdate: watch });
  if (batch.kind !== 'batch') throw new Error(`${submitted.id} is not a batch`);
  const failedRows: RowView[] = [];
  for await (const row of jobs.rows(batch.id, { status: 'FAILED', signal })) failedRows.push(row);
  const output = batch.batch.outputs.priced;
  const priced = output ? parsePriced(await new Response(await jobs.download(output, { signal })).text()) : [];
  if (batch.status !== 'SUCCEEDED') return { batch, failedRows, priced };

  const submittedJob = await jobs.submit(
    {
      type: 'invoice.render',
      strategy: 'concurrent',
      meta: { source: 'example-service', batch: batch.id },
      tasks: totals(priced).map(({ invoice, gross, currency }) => ({
        name: invoice,
        processor: 'invoice.render',
        input: {
          invoice,
          customer: CUSTOMERS[invoice] ?? 'unknown customer',
          currency,
          gross,
          unavailableAttempts: invoice === FLAKY_INVOICE ? 2 : 0,
        },
      })),
    },
    { signal },
  );
  progress(`job ${submittedJob.id}: ${submittedJob.tasks.length} invoices to render`);
  const job = await jobs.wait(submittedJob.id, { timeoutMs, signal, onUpdate: watch });
  if (job.kind !== 'tasks') throw new Error(`${submittedJob.id} is not a job of tasks`);
  return { batch, failedRows, priced, job };
}

/** Gross per invoice, in the order invoices first appear. */
export function totals(priced: PricedLine[]): { invoice: string; gross: number; currency: string }[] {
  const byInvoice = new Map<string, { invoice: string; gross: number; currency: string }>();
  for (const line of priced) {
    const total = byInvoice.get(line.invoice) ?? { invoice: line.invoice, gross: 0, currency: line.currency };
    total.gross += line.gross;
    byInvoice.set(line.invoice, total);
  }
  return [...byInvoice.values()];
}

export function parsePriced(text: string): PricedLine[] {
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      const [invoice = '', sku = '', quantity, net, tax, gross, currency = ''] = line.split(',');
      return {
        invoice,
        sku,
        quantity: Number(quantity),
        net: Number(net),
        tax: Number(tax),
        gross: Number(gross),
        currency,
      };
    });
}

/** The run as a person reads it, and whether it went as the service needs (both SUCCEEDED). */
export function summarize(run: InvoiceRun): { ok: boolean; text: string } {
  const { job, batch, failedRows, priced } = run;
  const { counts } = batch;
  const lines = [
    `pricing batch ${batch.id}: ${batch.status}, ${counts.total} rows: ${counts.succeeded} priced, ${counts.failed} failed${
      batch.error ? ` (${batch.error.code}: ${batch.error.message})` : ''
    }`,
  ];
  for (const row of failedRows) lines.push(`  line ${row.line}: ${row.error?.code}: ${row.error?.message}`);
  lines.push(`  output priced: ${priced.length} lines`);
  for (const { invoice, gross, currency } of totals(priced)) {
    lines.push(`  ${invoice}: ${(gross / 100).toFixed(2)} ${currency}`);
  }
  if (job) {
    lines.push(`render job ${job.id}: ${job.status}`);
    for (const task of job.tasks) {
      const retried = task.attemptLog.filter((a) => a.outcome === 'retried').map((a) => a.error?.code);
      lines.push(
        `  ${task.name}: ${task.status} after ${task.attempts} attempt(s)${
          retried.length > 0 ? ` (retried: ${retried.join(', ')})` : ''
        }${task.error ? `, ${task.error.code}: ${task.error.message}` : ''}`,
      );
    }
  } else {
    lines.push('render job: not submitted (the batch did not succeed)');
  }
  return { ok: batch.status === 'SUCCEEDED' && job?.status === 'SUCCEEDED', text: lines.join('\n') };
}

/** The client as the environment asks: `JOBS_ENDPOINT`, and `JOBS_AUTH=iam` or `JOBS_TOKEN` (a JWT). */
export function clientFromEnv(env: NodeJS.ProcessEnv = process.env): JobsClient {
  const endpoint = env.JOBS_ENDPOINT ?? 'http://127.0.0.1:3000';
  if (env.JOBS_TOKEN) return new JobsClient({ endpoint, auth: { type: 'jwt', token: env.JOBS_TOKEN } });
  if (env.JOBS_AUTH === 'iam') return new JobsClient({ endpoint, auth: { type: 'iam' } });
  return new JobsClient({ endpoint, auth: { type: 'none' } });
}

/** `npm run submit [-- FILE.csv]`: runs once against JOBS_ENDPOINT, prints the summary, exits 1 unless all went well. */
export async function main(argv = process.argv.slice(2), env = process.env): Promise<number> {
  try {
    const run = await runInvoices(clientFromEnv(env), {
      csv: argv[0] ? resolve(env.INIT_CWD ?? process.cwd(), argv[0]) : SAMPLE_CSV,
      progress: (message) => console.error(message),
    });
    const { ok, text } = summarize(run);
    console.log(text);
    return ok ? 0 : 1;
  } catch (error) {
    if (error instanceof JobsApiError) console.error(`submit: ${error.status} ${error.code}: ${error.message}`);
    else console.error(`submit: ${(error as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
