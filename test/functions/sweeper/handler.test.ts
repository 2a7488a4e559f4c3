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

        const sweep = second.schedules.find((s) => s.name === 'sweep');
        // The schedule declared in shared/resources.ts; a rename must fail here, not skip the sweep.
        expect(sweep?.functionName).toBe(`jobs-${second.info.stage}-sweeper`);
        await sweep?.tick();
        const job = await api.waitFor(body.id, 20);
        expect(job.status).toBe('SUCCEEDED');
        expect(job.tasks.map((t) => t.result)).toEqual([{ echo: 1 }, { echo: 2 }]);

        // A finished job gets its expiry, and the next sweep passes it by: nothing active, nothing sent.
        const [done] = (await tableItems(second)).filter((i) => i.id === body.id);
        expect(typeof done?.expiresAt).toBe('number');
        const again = await second.host.invoke(sweep?.functionName as string, { detail: {} });
        expect(again).toMatchObject({ ok: true, result: { jobs: 0, resent: 0 } });
        const [after] = (await tableItems(second)).filter((i) => i.id === body.id);
        expect(after?.version).toBe(done?.version);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
