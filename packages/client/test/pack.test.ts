import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { packBuilt } from '../../../test/support/pack.js';
import { startTestStack } from '../../../test/support/stack.js';

/**
 * The package as a user gets it: `npm pack`, installed into an empty project, imported by name
 * (ESM, every entry), its types checked by tsc there, and one job run against the local stack.
 * Async child processes only: the embedded stack answers from this very process.
 */
const run = promisify(execFile);
const pkg = join(import.meta.dirname, '..');
const root = join(pkg, '../..');
let stack: LocalStack;
let project: string;

beforeAll(async () => {
  stack = await startTestStack();
  project = mkdtempSync(join(tmpdir(), 'client-pack-'));
});
afterAll(async () => {
  await stack?.stop();
  if (project) rmSync(project, { recursive: true, force: true });
});

const script = `
import { JobsClient, NotFoundError, ValidationError } from '@serverless-jobs/client';
import { enqueue } from '@serverless-jobs/client/sqs';
import { fileData } from '@serverless-jobs/client/node';
import { SQSClient } from '@aws-sdk/client-sqs';

const client = new JobsClient({ endpoint: process.env.JOBS_API, auth: { type: 'none', owner: 'packed' } });
const job = await client.submit({ type: 'packed', tasks: [{ processor: 'demo.echo', input: 'from the tarball' }] });
const done = await client.wait(job.id, { timeoutMs: 20000 });
const missing = await client.get('no-such-job').catch((error) => error);
const invalid = await client.submit({ type: 'packed', tasks: [] }).catch((error) => error);
const sqs = new SQSClient({});
const queued = await enqueue(sqs, process.env.SUBMIT_QUEUE, { type: 'packed-queued', tasks: [{ processor: 'demo.echo' }] });
sqs.destroy();
console.log(JSON.stringify({
  status: done.status,
  result: done.tasks[0].result,
  notFound: missing instanceof NotFoundError,
  invalid: invalid instanceof ValidationError && invalid.details.map((d) => d.path),
  queued: typeof queued.messageId,
  fileData: typeof fileData,
}));
`;

const typed = `
import { type AnyJobView, type BatchView, JobsClient, type JobView } from '@serverless-jobs/client';

const client = new JobsClient({ endpoint: 'http://127.0.0.1:1', auth: { type: 'jwt', token: async () => 't' } });
export async function use(): Promise<string> {
  const job: JobView = await client.submit({ type: 't', tasks: [{ processor: 'p', input: { any: 'json' } }] });
  const batch: BatchView = await client.submitBatch({ type: 't', batch: { processor: 'p', upload: true } });
  // @ts-expect-error a job needs its tasks
  await client.submit({ type: 't' });
  // @ts-expect-error strategy is 'sequential' or 'concurrent'
  await client.submit({ type: 't', strategy: 'random', tasks: [] });
  const any: AnyJobView = await client.get(job.id);
  const url: string | undefined = batch.batch.upload?.url;
  for await (const row of client.rows(batch.id, { status: 'FAILED' })) row.line.toFixed();
  return any.kind === 'batch' ? any.batch.processor : (any.tasks[0]?.status ?? url ?? '');
}
`;

describe('npm pack', () => {
  it('installs into an empty project, imports by name with types, and runs a job on the local stack', async () => {
    await run('npm', ['run', 'build'], { cwd: pkg });
    const packed = await packBuilt(pkg, project);
    const files = packed.files.map((file) => file.path);
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('README.md');
    expect(files.filter((file) => file.startsWith('src/') || file.startsWith('test/'))).toEqual([]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-app', private: true, type: 'module' }));
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${packed.filename}`, '@aws-sdk/client-sqs'],
      { cwd: project },
    );

    writeFileSync(join(project, 'use.ts'), typed);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023', 'DOM', 'DOM.Iterable'],
          types: [],
          strict: true,
          noEmit: true,
        },
        files: ['use.ts'],
      }),
    );
    await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd: project });

    writeFileSync(join(project, 'main.mjs'), script);
    const env = { ...process.env, JOBS_API: stack.info.api, SUBMIT_QUEUE: stack.info.queues.submit!.url };
    const out = await run(process.execPath, ['main.mjs'], { cwd: project, env });
    expect(JSON.parse(out.stdout)).toEqual({
      status: 'SUCCEEDED',
      result: { echo: 'from the tarball' },
      notFound: true,
      invalid: ['tasks'],
      queued: 'string',
      fileData: 'function',
    });
  }, 240_000);
});
