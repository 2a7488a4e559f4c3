import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiClient, tableItems } from '../../support/api.js';
import { startTestStack } from '../../support/stack.js';

describe('the sweeper', () => {
  it('finishes a job whose task message was lost, here with the local queue across a restart', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'jobs-sweep-'));
    try {
      // Accepted, but no worker runs before the stop; the embedded SQS keeps no messages.
      const first = await startTestStack({ stateDir, startPollers: false });
      const { body } = await apiClient(first).submit({
        type: 'survivor',
        tasks: [
          { processor: 'demo.echo', input: 1 },
          { processor: 'demo.echo', input: 2 },
        ],
      });
      await first.stop();

      const second = await startTestStack({ stateDir, handlerEnv: { SWEEP_GRACE_SECONDS: '0' } });
      try {
        const api = apiClient(second);
        expect((await api.get(body.id)).body.status).toBe('PENDING');

        await second.schedules.find((s) => s.name === 'sweep')?.tick();
        const job = await api.waitFor(body.id, 20);
        expect(job.status).toBe('SUCCEEDED');
        expect(job.tasks.map((t) => t.result)).toEqual([{ echo: 1 }, { echo: 2 }]);

        // A finished job gets its expiry, and the next sweep passes it by.
        const [done] = (await tableItems(second)).filter((i) => i.id === body.id);
        expect(typeof done?.expiresAt).toBe('number');
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
