import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOnce, jobs as cli, hasScript, jsonLines, root } from '../../../packages/cli/test/support.js';
import type { LocalJobs } from '../scripts/dev.js';

/**
 * The example service as its user runs it: its processors on `npm start` (processors.local.json),
 * its submitter through the client, `npm run dev` end to end, and its CDK app synthesized. It
 * imports the packages by name, so they are built first (their `dist`, as npm would install them);
 * what needs them is imported only after that build.
 */
const SERVICE = join(import.meta.dirname, '..');

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation and processor replies of any shape.
type Json = any;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  return new Promise<Ran>((done, fail) => {
    const child = spawn(command, args, {
      cwd: SERVICE,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 240_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    child.once('error', fail);
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  const built = await run('npm', ['run', 'build:packages'], { timeoutMs: 300_000 });
  expect(built.code, built.stderr).toBe(0);
  // The CLI as its own tests build it (under their lock), for the part that runs it.
  await buildOnce();
}, 300_000);

it('type-checks against the types the packages ship (the root typecheck leaves it out: it needs them built)', async () => {
  const checked = await run('npx', ['tsc', '-p', '.']);
  expect(checked.code, checked.stdout).toBe(0);
}, 120_000);

describe('on npm start with processors.local.json', () => {
  let jobs: LocalJobs;
  let submit: typeof import('../src/submit.js');
  /** What the client part saw: the CLI part holds its own run of the same file to it. */
  let seen: Awaited<ReturnType<typeof import('../src/submit.js').runInvoices>> | undefined;

  beforeAll(async () => {
    const { startLocalJobs } = await import('../scripts/dev.js');
    submit = await import('../src/submit.js');
    jobs = await startLocalJobs();
  }, 180_000);
  afterAll(() => jobs?.stop());

  it('prices the CSV as a batch (bad rows failing alone) and renders its invoices, retrying the unavailable renderer', async () => {
    const result = await submit.runInvoices(submit.clientFromEnv({ JOBS_ENDPOINT: jobs.endpoint }));
    seen = result;
    const { batch, failedRows, priced, job } = result;

    expect(batch.status).toBe('SUCCEEDED');
    expect(batch.counts).toMatchObject({ total: 12, succeeded: 9, failed: 3 });
    expect(failedRows.map((row) => [row.line, row.error?.code, row.error?.message])).toEqual([
      [6, 'INVALID_ROW', expect.stringContaining('quantity')],
      [8, 'DISCONTINUED_SKU', 'FAX-001 is no longer sold'],
      [9, 'INVALID_ROW', 'invoice: must be INV- and four digits'],
    ]);
    // The downloaded output: one line per priced row, in line order; 10 × 4.99 at 19 % is 49.90 + 9.48.
    expect(batch.batch.outputs.priced?.lines).toBe(9);
    expect(priced.map((line) => line.sku)).toEqual([
      'PAP-100',
      'PEN-200',
      'INK-300',
      'PAP-100',
      'DSK-410',
      'PAP-101',
      'LMP-500',
      'CBL-510',
      'MNT-520',
    ]);
    expect(priced[0]).toEqual({
      invoice: 'INV-0001',
      sku: 'PAP-100',
      quantity: 10,
      net: 4990,
      tax: 948,
      gross: 5938,
      currency: 'EUR',
    });
    expect(submit.totals(priced)).toEqual([
      { invoice: 'INV-0001', gross: 19_207, currency: 'EUR' },
      { invoice: 'INV-0002', gross: 74_226, currency: 'EUR' },
      { invoice: 'INV-0003', gross: 29_440, currency: 'EUR' },
    ]);

    expect(job?.status).toBe('SUCCEEDED');
    const tasks = job?.tasks ?? [];
    expect(tasks.map((task) => [task.name, task.status, task.attempts])).toEqual([
      ['INV-0001', 'SUCCEEDED', 3],
      ['INV-0002', 'SUCCEEDED', 1],
      ['INV-0003', 'SUCCEEDED', 1],
    ]);
    expect(tasks[0]?.attemptLog.map((attempt) => [attempt.outcome, attempt.error?.code ?? null])).toEqual([
      ['retried', 'RENDERER_UNAVAILABLE'],
      ['retried', 'RENDERER_UNAVAILABLE'],
      ['succeeded', null],
    ]);
    expect(tasks[0]?.result).toMatchObject({ invoice: 'INV-0001', attempt: 3 });

    const summary = submit.summarize(result);
    expect(summary.ok).toBe(true);
    expect(summary.text).toContain('INV-0001: SUCCEEDED after 3 attempt(s) (retried: RENDERER_UNAVAILABLE');
    expect(summary.text).toContain('line 8: DISCONTINUED_SKU: FAX-001 is no longer sold');
  }, 120_000);

  it('npm run submit prints why and exits 1 when the batch fails (more bad rows than maxFailedRows)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'invoice-csv-'));
    try {
      const header = 'invoice,sku,description,quantity,unit_price';
      const bad = Array.from({ length: 6 }, (_, i) => `INV-000${i},PAP-100,paper,none,1.00`);
      writeFileSync(join(dir, 'bad.csv'), [header, 'INV-0009,PAP-100,paper,1,1.00', ...bad, ''].join('\n'));
      const ran = await run('npx', ['tsx', 'src/submit.ts', join(dir, 'bad.csv')], {
        env: { JOBS_ENDPOINT: jobs.endpoint },
      });
      expect(ran.code, ran.stderr).toBe(1);
      expect(ran.stdout).toContain('FAILED, 7 rows: 1 priced, 6 failed (TOO_MANY_FAILED_ROWS');
      expect(ran.stdout).toContain('render job: not submitted');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  describe.skipIf(!hasScript)('the same through the CLI (jobs, spawned on a pseudo-terminal)', () => {
    // The stack's endpoint, without credentials (as its LOCAL_AUTH=none expects).
    const flags = () => ['--endpoint', jobs.endpoint, '--auth', 'none'];
    // What the submitter puts in its batch body, as the CLI's flags carry it.
    const context = { currency: 'EUR', taxPercent: 19, discontinued: ['FAX-001'] };
    /** The CLI's exit code for a job that ended so (its README's table). */
    const EXIT_OF: Record<string, number> = { SUCCEEDED: 0, FAILED: 10, ABORTED: 11 };
    // The pseudo-terminal turns \n into \r\n.
    const screen = (text: string) => text.replaceAll('\r\n', '\n');

    it('batch prices the CSV with a progress bar, exits as the batch ended, and rows lists the lines the client saw fail', async () => {
      expect(seen, 'the client part ran first').toBeDefined();
      const ran = await cli(
        [
          'batch',
          'examples/service/data/invoice-lines.csv',
          '--processor',
          'invoice.lines',
          '--type',
          'invoice.lines',
          '--chunk-size',
          '5',
          '--max-failed-rows',
          '5',
          '--context',
          JSON.stringify(context),
          ...flags(),
        ],
        { tty: true, cwd: root, env: { NO_COLOR: '1' } },
      );
      const out = screen(ran.stdout);
      expect(ran.code, out).toBe(EXIT_OF[seen?.batch.status ?? '']);
      expect(out).toMatch(/upload █+ 100% \| \d+\/\d+ bytes/);
      const { total, failed: failures } = seen?.batch.counts ?? { total: -1, failed: -1 };
      // 12 rows in chunks of 5: 3 chunks.
      expect(out).toContain(`100% | ${total}/${total} rows | ${failures} failed | chunks 3/3 | ${seen?.batch.status}`);
      expect(out).toMatch(/█+ 100% \| /);
      const id = /^│ id +│ (\S+) +│$/m.exec(out)?.[1];
      expect(id, out).toBeDefined();

      const rows = await cli(['rows', id as string, '--status', 'FAILED', '--json', ...flags()]);
      expect(rows.code, rows.stderr).toBe(0);
      const failed = jsonLines(rows.stdout);
      expect(failed.map(({ line, status, error }) => ({ line, status, error }))).toEqual(
        seen?.failedRows.map(({ line, status, error }) => ({ line, status, error })),
      );
      expect(failed).toHaveLength(3);
    }, 120_000);

    it('submit and watch of one render job exit 0, its task retried past the unavailable renderer', async () => {
      const input = {
        invoice: 'INV-0001',
        customer: 'Acme GmbH',
        currency: 'EUR',
        gross: 19_207,
        unavailableAttempts: 2,
      };
      const submit = ['submit', '--type', 'invoice.render', '--processor', 'invoice.render'];
      const submitted = await cli([...submit, '--input', JSON.stringify(input), '--json', ...flags()]);
      expect(submitted.code, submitted.stderr).toBe(0);
      const { id } = JSON.parse(submitted.stdout) as { id: string };

      const watched = await cli(['watch', id, ...flags()], { tty: true, env: { NO_COLOR: '1' } });
      expect(watched.code, screen(watched.stdout)).toBe(0);
      expect(screen(watched.stdout)).toMatch(/│ status +│ SUCCEEDED 100%, 1\/1 task done +│/);

      const got = await cli(['get', id, '--json', ...flags()]);
      expect(got.code, got.stderr).toBe(0);
      const view = JSON.parse(got.stdout) as { status: string; tasks: { status: string; attempts: number }[] };
      expect(view.status).toBe('SUCCEEDED');
      expect(view.tasks).toHaveLength(1);
      expect(view.tasks[0]?.status).toBe('SUCCEEDED');
      expect(view.tasks[0]?.attempts).toBeGreaterThan(1);
    }, 120_000);
  });
});

it('npm run dev: starts the stack with the processors, runs the submitter, stops, and exits 0', async () => {
  // What `npm run dev` runs once its predev has built the packages (done above).
  const ran = await run('npx', ['tsx', 'scripts/dev.ts'], { timeoutMs: 180_000 });
  expect(ran.code, ran.stderr).toBe(0);
  expect(ran.stdout).toMatch(/^pricing batch \S+: SUCCEEDED, 12 rows: 9 priced, 3 failed$/m);
  expect(ran.stdout).toMatch(/^render job \S+: SUCCEEDED$/m);
  expect(ran.stderr).toContain('dev: stopping the local stack');
}, 200_000);

describe('the CDK app (infra/app.ts), synthesized', () => {
  let out: string;
  let template: Template;
  let functions: Record<string, Json>;
  /** The app's function of that construct id (a construct at the stack's top: its logical id begins with it). */
  const fnOf = (constructId: string) => {
    const found = Object.entries(functions).filter(([id]) => id.startsWith(constructId));
    expect(found).toHaveLength(1);
    return { id: found[0]?.[0] as string, fn: found[0]?.[1] };
  };

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'invoice-cdk-'));
    const synth = await run('npx', ['tsx', 'infra/app.ts'], { env: { CDK_OUTDIR: out } });
    expect(synth.code, synth.stderr).toBe(0);
    template = Template.fromJSON(JSON.parse(readFileSync(join(out, 'InvoiceService.template.json'), 'utf8')));
    functions = template.findResources('AWS::Lambda::Function');
  }, 240_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('lets the worker invoke exactly the two processor functions, registered as processors.local.json registers them', () => {
    const lines = fnOf('InvoiceLines');
    const render = fnOf('RenderInvoice');
    const invokes = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((policy: Json) =>
      (policy.Properties.PolicyDocument.Statement as Json[]).filter((s) =>
        [s.Action].flat().includes('lambda:InvokeFunction'),
      ),
    );
    expect(invokes).toHaveLength(1);
    expect(invokes[0].Resource).toEqual(
      expect.arrayContaining([{ 'Fn::GetAtt': [lines.id, 'Arn'] }, { 'Fn::GetAtt': [render.id, 'Arn'] }]),
    );
    expect(invokes[0].Resource).toHaveLength(2);

    const worker = Object.values(functions).find((fn) => fn.Properties.FunctionName === 'jobs-invoices-worker');
    const value = worker.Properties.Environment.Variables.PROCESSORS;
    const parts: (string | Json)[] = typeof value === 'string' ? [value] : value['Fn::Join'][1];
    const registry = JSON.parse(parts.map((part) => (typeof part === 'string' ? part : `<${part.Ref}>`)).join(''));
    const local = JSON.parse(readFileSync(join(SERVICE, 'processors.local.json'), 'utf8'));
    expect(registry).toEqual({
      'invoice.lines': { ...local['invoice.lines'], target: { type: 'lambda', functionName: `<${lines.id}>` } },
      'invoice.render': { ...local['invoice.render'], target: { type: 'lambda', functionName: `<${render.id}>` } },
    });
  });

  it('bundles the render processor into a Lambda that answers the processor contract on its own', async () => {
    const { fn } = fnOf('RenderInvoice');
    const asset = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
    const bundle = join(out, `asset.${asset}`, 'index.mjs');
    const { handler } = (await import(pathToFileURL(bundle).href)) as { handler: (e: Json, c: Json) => Promise<Json> };
    const context = { getRemainingTimeInMillis: () => 30_000, functionName: 'render', awsRequestId: 'r-1' };
    const event = (attempt: number) => ({
      job: { id: 'j-1', type: 'invoice.render' },
      task: {
        id: 'j-1.0',
        processor: 'invoice.render',
        attempt,
        input: { invoice: 'INV-0001', customer: 'Acme', currency: 'EUR', gross: 100, unavailableAttempts: 1 },
      },
    });
    expect(await handler(event(1), context)).toMatchObject({
      status: 'error',
      error: { code: 'RENDERER_UNAVAILABLE', retryable: true },
    });
    expect(await handler(event(2), context)).toMatchObject({
      status: 'ok',
      result: { invoice: 'INV-0001', attempt: 2 },
    });
  });
});
