import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { packBuilt } from '../../../test/support/pack.js';
import { startTestStack } from '../../../test/support/stack.js';
import { buildOnce, jobs, pkg, root } from './support.js';

/**
 * The CLI as a user installs it: the client's and the CLI's tarballs into an empty project, then
 * `npx jobs` from there against the local stack. Async child processes only (the stack answers
 * from this process).
 */
const run = promisify(execFile);
let stack: LocalStack;
let project: string;

beforeAll(async () => {
  [stack] = await Promise.all([startTestStack(), buildOnce()]);
  project = mkdtempSync(join(tmpdir(), 'cli-pack-'));
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  if (project) rmSync(project, { recursive: true, force: true });
});

/** A second build here would empty dist/ under the other test files that run the CLI from it. */
const pack = (dir: string) => packBuilt(dir, project);

describe('npm pack', () => {
  it('installs with the client into an empty project, where npx jobsctl and its jobs run against the local stack', async () => {
    const client = await pack(join(root, 'packages/client'));
    const cli = await pack(pkg);
    const files = cli.files.map((file) => file.path).sort();
    expect(files).toEqual(['README.md', 'dist/cli.js', 'package.json']);

    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'ops-scripts', private: true }));
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${client.filename}`, `./${cli.filename}`],
      { cwd: project },
    );

    // From a shell, `jobs` is the shell's own builtin: npx (which runs its command in sh) needs `jobsctl`.
    const npx = ['npx', '--no', '--', 'jobsctl'];
    const help = await jobs(['--help'], { command: npx, cwd: project });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: jobsctl [options] [command]');
    const version = await jobs(['--version'], { command: npx, cwd: project });
    expect(version.stdout.trim()).toBe('0.1.0');

    const env = { JOBS_ENDPOINT: stack.info.api, JOBS_CONFIG: join(project, 'none.json') };
    const submitted = await jobs(
      ['submit', '--type', 'packed', '--processor', 'demo.echo', '--input', '"hi"', '--json'],
      {
        command: npx,
        cwd: project,
        env,
      },
    );
    expect(submitted.code).toBe(0);
    const { id } = JSON.parse(submitted.stdout) as { id: string };
    expect((await jobs(['watch', id, '--json'], { command: npx, cwd: project, env })).code).toBe(0);
    // `jobs` itself, where no shell stands between: a program starting it by path.
    const bin = [join(project, 'node_modules/.bin/jobs')];
    const got = await jobs(['get', id, '--json'], { command: bin, cwd: project, env });
    expect(JSON.parse(got.stdout)).toMatchObject({ id, status: 'SUCCEEDED', tasks: [{ result: { echo: 'hi' } }] });
    const missing = await jobs(['get', 'no-such-job'], { command: bin, cwd: project, env });
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^error: NOT_FOUND: /);
  }, 240_000);
});
