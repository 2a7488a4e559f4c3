import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../local/net.js';
import { eventually } from '../support/stack.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Reply = any;

/** `npm start` on a state folder of its own, as a user runs it. */
async function start(stateDir: string): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'local/main.ts', '--state-dir', stateDir], {
    env: { ...process.env, PORT: String(port), POWERTOOLS_LOG_LEVEL: 'ERROR' },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const base = `http://127.0.0.1:${port}`;
  await eventually(async () => (await fetch(`${base}/v1/health`)).status === 200, 30_000);
  return { child, base };
}

const get = async (base: string, path: string): Promise<Reply> => (await fetch(`${base}${path}`)).json();
const post = async (base: string, body: unknown): Promise<Reply> =>
  (
    await fetch(`${base}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
  ).json();

describe('npm start after kill -9', () => {
  it('resumes a task that was RUNNING under a live lease and an inline batch cut off mid-way', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'jobs-restart-'));
    let running: ChildProcess | undefined;
    try {
      const first = await start(stateDir);
      running = first.child;
      const sleeper = await post(first.base, {
        type: 'nap',
        tasks: [{ processor: 'demo.sleep', input: { ms: 4000 } }],
      });
      const rows = Array.from({ length: 3000 }, (_, n) => ({ n }));
      const batch = await post(first.base, { type: 'import', batch: { processor: 'demo.rows', chunkSize: 1, rows } });
      // The sleeping task's start (and its lease, ~70 s) is written after a second.
      await eventually(async () => (await get(first.base, `/v1/jobs/${sleeper.id}`)).tasks[0].status === 'RUNNING');
      await eventually(async () => (await get(first.base, `/v1/jobs/${batch.id}`)).batch.chunks.done > 0);
      first.child.kill('SIGKILL');
      await new Promise((resolve) => first.child.once('exit', resolve));
      const cut = await (async () => {
        const second = await start(stateDir);
        running = second.child;
        return second;
      })();

      // Long before the dead worker's lease would lapse: attempt 2 runs, attempt 1 is fenced.
      const nap = await eventually(async () => {
        const job = await get(cut.base, `/v1/jobs/${sleeper.id}?wait=10`);
        return job.status === 'SUCCEEDED' ? job : undefined;
      }, 40_000);
      expect(nap.tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 2, result: { slept: 4000 } });

      const done = await eventually(async () => {
        const job = await get(cut.base, `/v1/jobs/${batch.id}?wait=10`);
        return job.batch.finalized ? job : undefined;
      }, 120_000);
      expect(done).toMatchObject({ status: 'SUCCEEDED', counts: { total: 3000, succeeded: 3000, failed: 0 } });
    } finally {
      running?.kill('SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 240_000);
});
