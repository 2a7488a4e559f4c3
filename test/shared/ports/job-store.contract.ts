import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BatchJob } from '../../../shared/core/batches/model.js';
import type { Job } from '../../../shared/core/model.js';
import type { JobStore } from '../../../shared/core/ports.js';
import { abortJob } from '../../../shared/core/tasks/repairs.js';
import { createJob } from '../../../shared/core/tasks/transitions.js';

/**
 * What every JobStore promises (shared/core/ports.ts), as tests: run against the in-memory fake in
 * the unit suite and against the DynamoDB adapter in the integration suite, so the fake the engine
 * tests rely on cannot drift from the real store.
 *
 * `store()` gives a store that keeps finished jobs for one day (the retention case needs it). Ids
 * are unique per run: the real table is shared with other tests and earlier runs.
 */
export function jobStoreContract(name: string, store: () => JobStore): void {
  const run = randomUUID().slice(0, 8);
  const id = (label: string) => `contract-${run}-${label}`;

  const tasksJob = (jobId: string, input: unknown = { n: 1 }, at = new Date()): Job =>
    createJob(
      { type: 'contract', strategy: 'sequential', failFast: false, tasks: [{ processor: 'p', input }] },
      { jobId, taskIds: [`${jobId}.0`] },
      at,
      { owner: 'o', requestHash: 'h1' },
    ).job;

  const batchJob = (jobId: string, outputs = false): BatchJob => {
    const at = new Date().toISOString();
    return {
      id: jobId,
      owner: 'o',
      type: 'contract',
      kind: 'batch',
      status: outputs ? 'SUCCEEDED' : 'RUNNING',
      createdAt: at,
      updatedAt: at,
      ...(outputs ? { endedAt: at } : {}),
      requestHash: 'hb',
      version: 1,
      batch: {
        processor: 'rows',
        chunkSize: 2,
        maxFailedRows: 0,
        context: { deep: { list: [1, 'two', null] } },
        parts: [{ kind: 'rows', key: `inputs/${jobId}/rows-0.jsonl`, rows: 3 }],
        rows: 3,
        plan: { rows: 3, chunks: 2 },
        ...(outputs ? { outputs: { results: { key: `outputs/${jobId}/results.jsonl`, bytes: 10, lines: 3 } } } : {}),
      },
    };
  };

  describe(`${name} keeps the JobStore promises`, () => {
    it('creates a job once: a second create of its id changes nothing and hands back the first', async () => {
      const first = tasksJob(id('create'));
      expect(await store().create(first)).toEqual({ created: true });
      const other = { ...tasksJob(id('create'), { n: 2 }), requestHash: 'h2' };
      const again = await store().create(other);
      expect(again.created).toBe(false);
      if (!again.created) expect(again.existing).toEqual(first);
      expect(await store().get(first.id)).toEqual(first);
    });

    it('writes a replacement only over the version it names; the write that came first stays', async () => {
      const job = tasksJob(id('replace'));
      await store().create(job);
      expect(await store().replace({ ...job, version: 2, name: 'theirs' }, 1)).toBe(true);
      expect(await store().replace({ ...job, version: 2, name: 'mine' }, 1)).toBe(false);
      const read = await store().get(job.id);
      expect(read).toMatchObject({ name: 'theirs', version: 2 });
      expect(await store().replace({ ...job, version: 3, name: 'next' }, 2)).toBe(true);
      expect((await store().read(job.id))?.name).toBe('next');
    });

    it('discards a job only while it is the version named: a job changed since stays', async () => {
      const kept = tasksJob(id('discard-kept'));
      const gone = tasksJob(id('discard-gone'));
      await store().create(kept);
      await store().create(gone);
      expect(await store().replace({ ...kept, version: 2 }, 1)).toBe(true);
      expect(await store().discard(kept.id, 1)).toBe(false);
      expect(await store().discard(gone.id, 1)).toBe(true);
      expect(await store().read(gone.id)).toBeUndefined();
      expect((await store().read(kept.id))?.version).toBe(2);
      expect(await store().discard(gone.id, 1)).toBe(false);
      // Its id is free again: the caller's retry makes the job afresh.
      expect(await store().create(gone)).toEqual({ created: true });
    });

    it('refuses to replace a job that was never created', async () => {
      const job = tasksJob(id('absent'));
      expect(await store().replace({ ...job, version: 2 }, 1)).toBe(false);
      expect(await store().read(job.id)).toBeUndefined();
    });

    it('reads what it was given, not the caller’s object: changes to either side afterwards stay there', async () => {
      const job = tasksJob(id('copies'), { list: [1, 2] });
      await store().create(job);
      (job.tasks[0]!.input as { list: number[] }).list.push(3);
      job.name = 'changed after the write';
      const read = (await store().get(job.id))!;
      expect(read.tasks[0]!.input).toEqual({ list: [1, 2] });
      expect(read.name).toBeUndefined();
      read.tasks[0]!.status = 'FAILED';
      expect((await store().get(job.id))!.tasks[0]!.status).toBe('QUEUED');
    });

    it('keeps values as JSON has them: any number, text in any script, nulls and nesting', async () => {
      const input = {
        huge: 1e200,
        tiny: 1e-200,
        long: 9007199254740991,
        text: 'Zoë 東京 🚀',
        nested: [null, { a: [] }],
      };
      const job = tasksJob(id('values'), input);
      await store().create(job);
      expect((await store().get(job.id))!.tasks[0]!.input).toEqual(input);
    });

    it('reads a batch with `read` and `peek`, and not with `get` (which reads jobs of tasks)', async () => {
      const batch = batchJob(id('batch'));
      expect(await store().create(batch)).toEqual({ created: true });
      expect(await store().read(batch.id)).toEqual(batch);
      expect(await store().get(batch.id)).toBeUndefined();
      expect(await store().peek(batch.id)).toEqual(batch);
    });

    it('answers undefined for a job it never had', async () => {
      expect(await store().get(id('never'))).toBeUndefined();
      expect(await store().read(id('never'))).toBeUndefined();
      expect(await store().peek(id('never'))).toBeUndefined();
    });

    it('sees its own writes at once with get and read (strongly consistent)', async () => {
      const job = tasksJob(id('consistent'));
      await store().create(job);
      for (let version = 1; version <= 5; version++) {
        expect(await store().replace({ ...job, version: version + 1, name: `v${version + 1}` }, version)).toBe(true);
        expect((await store().get(job.id))?.version).toBe(version + 1);
      }
    });

    it('lists the unfinished jobs created before a time, and batches whose outputs are not assembled', async () => {
      const longAgo = new Date(Date.now() - 3600_000);
      const open = tasksJob(id('active-open'), 1, longAgo);
      const ended = abortJob(tasksJob(id('active-ended'), 1, longAgo), longAgo).job;
      const young = tasksJob(id('active-young'));
      const running = { ...batchJob(id('active-batch')), createdAt: longAgo.toISOString() };
      const endedUnassembled = { ...running, id: id('active-batch-ended'), status: 'FAILED' as const };
      const assembled = { ...batchJob(id('active-batch-done'), true), createdAt: longAgo.toISOString() };
      for (const job of [open, ended, young, running, endedUnassembled, assembled]) await store().create(job);
      const found: { id: string; kind: string }[] = [];
      for await (const entry of store().activeJobs(new Date(Date.now() - 60_000))) {
        if (entry.id.startsWith(`contract-${run}-active`)) found.push(entry);
      }
      expect(found.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
        { id: running.id, kind: 'batch' },
        { id: endedUnassembled.id, kind: 'batch' },
        { id: open.id, kind: 'tasks' },
      ]);
    });

    it('reads a finished job past its retention as gone, and lets its id be used again', async () => {
      const longAgo = new Date(Date.now() - 3 * 86400_000);
      const ended = abortJob(tasksJob(id('retention'), 1, longAgo), longAgo).job;
      await store().create(ended);
      expect(await store().read(ended.id)).toBeUndefined();
      expect(await store().peek(ended.id)).toBeUndefined();
      const fresh = tasksJob(id('retention'));
      expect(await store().create(fresh)).toEqual({ created: true });
      expect((await store().get(fresh.id))?.status).toBe('PENDING');
    });
  });
}
