import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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

/** The README and every page under docs/: what a reader is shown must run as shown. */
const pages = [
  'README.md',
  ...readdirSync('docs')
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

describe('the README, as printed', () => {
  it('has examples to run, and says why of every one it does not run', () => {
    const { run, skipped } = examplesOf('README.md');
    // The short path (a first job, a first batch) runs on the page; the rest of the examples moved
    // with their topics under docs/ and run from there.
    expect(run.length).toBeGreaterThanOrEqual(3);
    expect(pages.flatMap((page) => examplesOf(page).run).length).toBeGreaterThanOrEqual(5);
    for (const page of pages) {
      const all = examplesOf(page);
      for (const example of [...all.run, ...all.skipped]) {
        expect(example.script, `${page}:${example.line} holds a placeholder`).not.toMatch(/…|\{id\}/);
      }
    }
    expect(skipped.length).toBeLessThan(run.length);
  });

  it('links only to files that exist', () => {
    for (const page of pages) {
      const text = readFileSync(page, 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s#]+)(?:#[^)\s]*)?\)/g)) {
        if (/^[a-z]+:/.test(target as string)) continue;
        expect(existsSync(join(dirname(page), target as string)), `${page} links to ${target}`).toBe(true);
      }
    }
  });

  for (const page of pages) {
    for (const example of examplesOf(page).run) {
      it(`runs the example at ${page}:${example.line}`, async () => {
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
  }
});
