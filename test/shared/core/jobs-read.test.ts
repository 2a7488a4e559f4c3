import { describe, expect, it } from 'vitest';
import { Jobs } from '../../../shared/core/jobs.js';
import type { AnyJob, JobStore } from '../../../shared/core/ports.js';
import { Cursors } from '../../../shared/core/search.js';
import type { TaskEngine } from '../../../shared/core/tasks/engine.js';

const caller = { owner: 'alice', admin: false };

/** Jobs whose store answers each read with the next of `states` (the last one from then on). */
function polling(states: Partial<AnyJob>[]) {
  let reads = 0;
  const pauses: number[] = [];
  const store = {
    read: async () => ({ id: 'j1', owner: 'alice', ...states[Math.min(reads++, states.length - 1)] }) as AnyJob,
  } as unknown as JobStore;
  const jobs = new Jobs({
    store,
    // Reads never reach an engine.
    tasks: {} as TaskEngine,
    payloads: { load: async () => null, inlineLimitBytes: 0 } as never,
    cursors: new Cursors(async () => 'test-key'),
    // A clock that stands still: the wait must end all the same.
    clock: { now: () => new Date('2030-01-01T00:00:00Z') },
    sleep: async (ms) => {
      pauses.push(ms);
    },
  });
  return { jobs, pauses, reads: () => reads };
}

describe('reading a job with a wait (long poll)', () => {
  it('answers at once without a wait', async () => {
    const { jobs, reads } = polling([{ kind: 'tasks', status: 'RUNNING' }]);
    expect((await jobs.read('j1', caller)).status).toBe('RUNNING');
    expect(reads()).toBe(1);
  });

  it('answers as soon as the job has ended, pausing longer between reads', async () => {
    const { jobs, pauses } = polling([
      { kind: 'tasks', status: 'RUNNING' },
      { kind: 'tasks', status: 'RUNNING' },
      { kind: 'tasks', status: 'SUCCEEDED' },
    ]);
    expect((await jobs.read('j1', caller, { waitSeconds: 20 })).status).toBe('SUCCEEDED');
    expect(pauses).toEqual([100, 200]);
  });

  it('ends with the wait even when the clock does not move, answering the job as it is', async () => {
    const { jobs, pauses } = polling([{ kind: 'tasks', status: 'RUNNING' }]);
    expect((await jobs.read('j1', caller, { waitSeconds: 3 })).status).toBe('RUNNING');
    expect(pauses).toEqual([100, 200, 400, 800, 1000]);
  });

  it('waits on an ended batch until its outputs are assembled', async () => {
    const { jobs, pauses } = polling([
      { kind: 'batch', status: 'SUCCEEDED', batch: {} as never },
      { kind: 'batch', status: 'SUCCEEDED', batch: { outputs: {} } as never },
    ]);
    const job = await jobs.read('j1', caller, { waitSeconds: 5 });
    expect(job.kind === 'batch' && job.batch.outputs).toEqual({});
    expect(pauses).toEqual([100]);
  });

  it('does not show another owner’s job, waiting or not', async () => {
    const { jobs } = polling([{ kind: 'tasks', status: 'RUNNING', owner: 'bob' }]);
    await expect(jobs.read('j1', caller, { waitSeconds: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
