import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageDir = join(import.meta.dirname, '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
let project: string;

/** The package as a user gets it: packed, installed by npm into an empty project, imported by name. */
beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), 'kit-user-'));
  // prepack builds dist/ with tsup, as `npm publish` would.
  await run('npm', ['pack', '--silent', '--pack-destination', project], { cwd: packageDir });
  const tarball = readdirSync(project).find((name) => name.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack made no tarball');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `./${tarball}`, 'zod@^4'], {
    cwd: project,
  });
}, 240_000);
afterAll(() => rmSync(project, { recursive: true, force: true }));

describe('npm pack of @serverless-jobs/processor', () => {
  it('imports by name in an empty project and its handlers answer by the contract', async () => {
    writeFileSync(
      join(project, 'handler.mjs'),
      `import * as z from 'zod';
import { defineRowProcessor, defineTaskProcessor, ProcessorError, verifySignature } from '@serverless-jobs/processor';
export const task = defineTaskProcessor({
  input: z.object({ n: z.number() }),
  run: ({ n }, ctx) => {
    if (n < 0) throw new ProcessorError('NEGATIVE', 'n < 0');
    ctx.log('doubling');
    return { doubled: n * 2 };
  },
});
export const rows = defineRowProcessor({ row: z.string(), run: (row, ctx) => { ctx.outputs.write('up', row.toUpperCase()); return row.length; } });
const job = { id: 'j', type: 't' };
console.log(JSON.stringify([
  await task({ job, task: { id: 'j.0', processor: 'p', attempt: 1, input: { n: 21 } } }, { getRemainingTimeInMillis: () => 3000 }),
  await task({ job, task: { id: 'j.0', processor: 'p', attempt: 1, input: { n: -1 } } }),
  await task({ job, task: { id: 'j.0', processor: 'p', attempt: 1, input: 'x' } }),
  await rows({ job, chunk: { index: 0, attempt: 1, context: {}, rows: [{ line: 1, input: 'ab' }, { line: 2, input: 3 }] } }),
  verifySignature({ timestamp: '1', signature: 'sha256=00', body: '' }, { secret: 's' }),
]));
`,
    );
    const { stdout } = await run(process.execPath, ['handler.mjs'], { cwd: project });
    expect(JSON.parse(stdout)).toEqual([
      { status: 'ok', result: { doubled: 42 }, log: [{ level: 'info', message: 'doubling' }] },
      { status: 'error', error: { code: 'NEGATIVE', message: 'n < 0', retryable: false } },
      {
        status: 'error',
        error: {
          code: 'INVALID_INPUT',
          message: 'input: Invalid input: expected object, received string',
          retryable: false,
        },
      },
      {
        rows: [
          { line: 1, status: 'ok', result: 2, outputs: { up: 'AB' } },
          {
            line: 2,
            status: 'error',
            error: { code: 'INVALID_ROW', message: 'row: Invalid input: expected string, received number' },
          },
        ],
      },
      { ok: false, reason: 'stale timestamp' },
    ]);
  });

  it('ships types: inputs inferred from the schema, a result that is not JSON refused', async () => {
    writeFileSync(
      join(project, 'typed.ts'),
      `import * as z from 'zod';
import { defineTaskProcessor, type TaskReply } from '@serverless-jobs/processor';
export const ok = defineTaskProcessor({ input: z.object({ n: z.number() }), run: ({ n }) => ({ doubled: n * 2 }) });
export const reply: Promise<TaskReply> = ok({ job: { id: 'j', type: 't' }, task: { id: 'j.0', processor: 'p', attempt: 1, input: {} } });
// @ts-expect-error n is a number
defineTaskProcessor({ input: z.object({ n: z.number() }), run: ({ n }) => n.toUpperCase() });
// @ts-expect-error a Date is not JSON
defineTaskProcessor({ input: z.object({}), run: () => new Date() });
`,
    );
    const flags = [
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
    ];
    // Node's types as a Lambda project has them (the kit's HTTP adapters name node:http types).
    const typeRoots = join(import.meta.dirname, '../../../node_modules/@types');
    const compiled = await run(
      process.execPath,
      [tsc, ...flags, '--typeRoots', typeRoots, '--types', 'node', 'typed.ts'],
      {
        cwd: project,
      },
    ).then(
      () => 'compiled',
      (error: { stdout: string }) => error.stdout,
    );
    expect(compiled).toBe('compiled');
  });
});
