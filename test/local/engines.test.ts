import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../local/net.js';
import { eventually } from '../support/stack.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The aws-local engines (Java, Python) must die with the stack however it ends. */
describe.runIf(process.env.TEST_PROFILE === 'aws-local')('aws-local engine processes', () => {
  it.each(['SIGTERM', 'SIGINT', 'SIGKILL'] as const)(
    'are gone after the stack gets %s',
    async (signal) => {
      const stateDir = mkdtempSync(join(tmpdir(), 'jobs-engines-'));
      const port = await freePort();
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'local/main.ts', '--profile=aws-local', '--state-dir', stateDir],
        {
          env: { ...process.env, PORT: String(port) },
          stdio: 'ignore',
        },
      );
      try {
        const info = await eventually(async () => {
          const response = await fetch(`http://127.0.0.1:${port}/local/info`);
          return response.ok
            ? ((await response.json()) as {
                processes: { name: string; pid: number }[];
                endpoints: { dynamodb: string; sqs: string };
              })
            : undefined;
        }, 30_000);
        const pids = info.processes.map((p) => p.pid);
        expect(info.processes.map((p) => p.name).sort()).toEqual(['DynamoDB Local', 'moto']);
        expect(pids.every(alive)).toBe(true);
        // SIGKILL is the crash case: no handler runs, only the reapers notice.
        child.kill(signal);
        await eventually(async () => pids.every((pid) => !alive(pid)), 15_000);
        // And no engine listens any more (the reapers waited for them before exiting).
        const ports = [info.endpoints.dynamodb, info.endpoints.sqs].map((url) => new URL(url).port);
        const listing = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
        for (const enginePort of ports) {
          expect(listing.split('\n').filter((line) => line.includes(enginePort) && !line.includes('ps -eo'))).toEqual(
            [],
          );
        }
      } finally {
        child.kill('SIGKILL');
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});

describe('a missing engine', () => {
  it('is one clear line saying how to get it', async () => {
    const { startDynamoDbLocal, startMoto } = await import('../../local/engines.js');
    const path = process.env.PATH;
    process.env.PATH = mkdtempSync(join(tmpdir(), 'jobs-empty-path-'));
    try {
      await expect(startDynamoDbLocal()).rejects.toThrow(/^The aws-local profile needs Java 17\+ .*apt-get install/);
      await expect(startMoto()).rejects.toThrow(
        /^The aws-local profile needs moto_server .*pip install "moto\[server\]"/,
      );
    } finally {
      process.env.PATH = path;
    }
  });
});
