import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { close, freePort, listen } from '../../local/net.js';
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

  it('registers the PROCESSORS you give, without the demos when DEMO_PROCESSORS=off', async () => {
    const hook = createServer((request, response) => {
      request.resume().on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":1}'));
    });
    const hookPort = await listen(hook, 0);
    const stateDir = mkdtempSync(join(tmpdir(), 'jobs-main-'));
    const port = await freePort();
    const processors = {
      'crm.notify': {
        target: {
          type: 'http',
          url: `http://127.0.0.1:${hookPort}/`,
          secretEnv: 'CRM_SECRET',
          allowPrivateNetwork: true,
        },
        timeoutSeconds: 5,
      },
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'local/main.ts', '--state-dir', stateDir], {
      env: {
        ...process.env,
        PORT: String(port),
        PROCESSORS: JSON.stringify(processors),
        CRM_SECRET: 'secret',
        DEMO_PROCESSORS: 'off',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const base = `http://127.0.0.1:${port}`;
    const submit = (processor: string) =>
      fetch(`${base}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 't', tasks: [{ processor }] }),
      });
    try {
      await eventually(async () => (await fetch(`${base}/v1/health`)).ok, 10_000);
      expect((await submit('demo.echo')).status).toBe(400);
      const accepted = await submit('crm.notify');
      expect(accepted.status).toBe(202);
      const { id } = (await accepted.json()) as { id: string };
      const job = await eventually(async () => {
        const body = (await (await fetch(`${base}/v1/jobs/${id}?wait=5`)).json()) as { status: string };
        return body.status === 'SUCCEEDED' ? body : undefined;
      }, 15_000);
      expect(job.status).toBe('SUCCEEDED');
      expect(output).toContain('processors   crm.notify (DEMO_PROCESSORS=off)');
    } finally {
      child.kill('SIGTERM');
      await exited;
      await close(hook);
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('fails to start on a bad PROCESSORS with one readable line', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'jobs-main-'));
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'local/main.ts', '--state-dir', stateDir], {
      env: {
        ...process.env,
        PORT: String(await freePort()),
        PROCESSORS: JSON.stringify({ 'invoice.render': { target: { type: 'lambda' } } }),
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    rmSync(stateDir, { recursive: true, force: true });
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toMatch(
      /^jobs: PROCESSORS: Processor configuration: invoice\.render\.target\.functionName: .*; invoice\.render\.timeoutSeconds: [^\n]*$/,
    );
  });
});
