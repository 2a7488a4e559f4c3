import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { examplesOf } from '../support/docs.js';
import { startTestStack } from '../support/stack.js';

let stack: LocalStack;
let workdir: string;

beforeAll(async () => {
  stack = await startTestStack();
  workdir = mkdtempSync(join(tmpdir(), 'jobs-readme-'));
});
afterAll(async () => {
  await stack?.stop();
  rmSync(workdir, { recursive: true, force: true });
});

const { run, skipped } = examplesOf('README.md');

describe('the README, as printed', () => {
  it('has examples to run, and says why of every one it does not run', () => {
    expect(run.length).toBeGreaterThanOrEqual(4);
    for (const example of [...run, ...skipped]) {
      expect(example.script, `README.md:${example.line} holds a placeholder`).not.toMatch(/…|\{id\}/);
    }
  });

  for (const example of run) {
    it(`runs the example at README.md:${example.line}`, async () => {
      const script = example.script.replaceAll('http://127.0.0.1:3000', stack.info.api);
      // Not spawnSync: the stack answers from this very process, so its event loop must keep running.
      const result = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', script], {
        cwd: workdir,
        encoding: 'utf8',
        timeout: 120_000,
      }).catch((error: { stdout?: string; stderr?: string; code?: number }) => ({ ...error, failed: true }));
      const output = `${result.stdout}\n${result.stderr}`;
      expect('failed' in result, output).toBe(false);
      // Every answer the example prints is a success: no contract error, no refusal by the gateway.
      expect(result.stdout, output).not.toMatch(/\{"error":\{"code"|\{"message":"(Forbidden|Unauthorized)"\}/);
    }, 150_000);
  }
});
