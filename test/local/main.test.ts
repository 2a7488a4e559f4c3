import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../local/net.js';
import { eventually } from '../support/stack.js';

describe('npm start (local/main.ts)', () => {
  it('serves health, keeps state across a restart, and exits cleanly on SIGTERM', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'jobs-main-'));
    const run = async (extra: string[] = []) => {
      const port = await freePort();
      const child = spawn(process.execPath, ['--import', 'tsx', 'local/main.ts', '--state-dir', stateDir, ...extra], {
        env: { ...process.env, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const base = `http://127.0.0.1:${port}`;
      const health = await eventually(async () => {
        const response = await fetch(`${base}/v1/health`);
        return response.status === 200 ? response.json() : undefined;
      }, 10_000);
      return { child, exited, base, health, output: () => output };
    };
    try {
      const first = await run();
      expect(first.health).toEqual({ status: 'ok' });
      expect(first.output()).toContain('API');
      const info = await (await fetch(`${first.base}/local/info`)).json();
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      // Nothing is left listening after the stop.
      await expect(fetch(info.endpoints.dynamodb)).rejects.toThrow();
      await expect(fetch(`${first.base}/v1/health`)).rejects.toThrow();

      const fresh = await run(['--fresh']);
      fresh.child.kill('SIGINT');
      expect(await fresh.exited).toBe(0);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
