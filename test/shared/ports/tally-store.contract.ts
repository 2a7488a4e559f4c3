import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CHUNKS_PER_TALLY } from '../../../shared/core/batches/model.js';
import { sumTallies } from '../../../shared/core/batches/rules.js';
import type { TallyStore } from '../../../shared/core/ports.js';

/**
 * What every TallyStore promises (shared/core/ports.ts), run against the fake (unit suite) and the
 * DynamoDB adapter (integration suite): a chunk counts once, and nothing commits after an abort.
 */
export function tallyStoreContract(name: string, tallies: () => TallyStore): void {
  const run = randomUUID().slice(0, 8);
  const job = (label: string) => `contract-${run}-${label}`;

  describe(`${name} keeps the TallyStore promises`, () => {
    it('commits a chunk once: a second attempt is refused and the first commit stays', async () => {
      const id = job('once');
      const first = await tallies().commit(id, 5, { token: 'aaa', succeeded: 9, failed: 1 });
      expect(first.committed).toBe(true);
      if (first.committed) expect(first.tally.commits.get(5)).toEqual({ token: 'aaa', succeeded: 9, failed: 1 });
      expect(await tallies().commit(id, 5, { token: 'bbb', succeeded: 10, failed: 0 })).toEqual({ committed: false });
      expect((await tallies().read(id, 0))?.commits.get(5)).toEqual({ token: 'aaa', succeeded: 9, failed: 1 });
      expect(sumTallies(await tallies().all(id))).toEqual({ chunks: 1, succeeded: 9, failed: 1 });
    });

    it('counts the same commit again as committed: a retried write of its own', async () => {
      const id = job('retry');
      await tallies().commit(id, 0, { token: 'same', succeeded: 1, failed: 0 });
      const again = await tallies().commit(id, 0, { token: 'same', succeeded: 1, failed: 0 });
      expect(again.committed).toBe(true);
      expect(sumTallies(await tallies().all(id)).chunks).toBe(1);
    });

    it('hands back the tally after the write, with every commit of its group so far', async () => {
      const id = job('after');
      await tallies().commit(id, 0, { token: 'a', succeeded: 1, failed: 0 });
      const second = await tallies().commit(id, 1, { token: 'b', succeeded: 0, failed: 2 });
      expect(second.committed && [...second.tally.commits.keys()].sort()).toEqual([0, 1]);
      expect(second.committed && second.tally.group).toBe(0);
    });

    it('spreads chunks over tallies by group and reads them all back in group order', async () => {
      const id = job('groups');
      const chunks = [3 * CHUNKS_PER_TALLY + 2, 0, CHUNKS_PER_TALLY, 1];
      for (const chunk of chunks) await tallies().commit(id, chunk, { token: `k${chunk}`, succeeded: 1, failed: 0 });
      const all = await tallies().all(id);
      expect(all.map((t) => t.group)).toEqual([0, 1, 3]);
      expect(all.flatMap((t) => [...t.commits.keys()].sort((a, b) => a - b))).toEqual([
        0,
        1,
        CHUNKS_PER_TALLY,
        3 * CHUNKS_PER_TALLY + 2,
      ]);
      expect(await tallies().read(id, 2)).toBeUndefined();
    });

    it('commits nothing into a closed tally (an abort), even into a group never written before', async () => {
      const id = job('closed');
      await tallies().commit(id, 0, { token: 'x', succeeded: 1, failed: 0 });
      await tallies().close(id, 2);
      expect(await tallies().commit(id, 1, { token: 'y', succeeded: 1, failed: 0 })).toEqual({ committed: false });
      expect(await tallies().commit(id, CHUNKS_PER_TALLY, { token: 'z', succeeded: 1, failed: 0 })).toEqual({
        committed: false,
      });
      const all = await tallies().all(id);
      expect(all.map((t) => [t.group, t.closed])).toEqual([
        [0, true],
        [1, true],
      ]);
      expect(sumTallies(all).chunks).toBe(1);
    });

    it('keeps one job’s tallies apart from another’s', async () => {
      await tallies().commit(job('apart-a'), 0, { token: 'a', succeeded: 1, failed: 0 });
      expect(await tallies().all(job('apart-b'))).toEqual([]);
      expect(await tallies().read(job('apart-b'), 0)).toBeUndefined();
    });
  });
}
