import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { clients } from '../../../shared/aws/clients.js';
import { DynamoTallyStore } from '../../../shared/aws/tally-store.js';
import { CHUNKS_PER_TALLY } from '../../../shared/core/batches/model.js';
import { sumTallies } from '../../../shared/core/batches/rules.js';
import { startTestStack } from '../../support/stack.js';

let stack: LocalStack;
let tallies: DynamoTallyStore;

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
  tallies = new DynamoTallyStore(clients().doc, stack.info.tables.jobs, 1);
});
afterAll(() => stack?.stop());

describe('chunk commits on the real DynamoDB API', () => {
  it('counts a chunk once: a second attempt (a duplicate, a zombie) is refused and the first file stays', async () => {
    const first = await tallies.commit('t-1', 5, { token: 'aaa', succeeded: 9, failed: 1 });
    expect(first.committed).toBe(true);
    const second = await tallies.commit('t-1', 5, { token: 'bbb', succeeded: 10, failed: 0 });
    expect(second).toEqual({ committed: false });
    const tally = await tallies.read('t-1', 0);
    expect(tally?.commits.get(5)).toEqual({ token: 'aaa', succeeded: 9, failed: 1 });
    expect(sumTallies(await tallies.all('t-1'))).toEqual({ chunks: 1, succeeded: 9, failed: 1 });
  });

  it('spreads chunks over tallies by group and reads them all back in order', async () => {
    const chunks = [0, 1, CHUNKS_PER_TALLY, 3 * CHUNKS_PER_TALLY + 2];
    await Promise.all(
      chunks.map((chunk) => tallies.commit('t-2', chunk, { token: `k${chunk}`, succeeded: 1, failed: 0 })),
    );
    const all = await tallies.all('t-2');
    expect(all.map((t) => t.group)).toEqual([0, 1, 3]);
    expect(all.flatMap((t) => [...t.commits.keys()])).toEqual(chunks);
  });

  it('commits nothing into a closed tally (an abort), even for a group never written before', async () => {
    await tallies.commit('t-3', 0, { token: 'x', succeeded: 1, failed: 0 });
    await tallies.close('t-3', 2);
    expect(await tallies.commit('t-3', 1, { token: 'y', succeeded: 1, failed: 0 })).toEqual({ committed: false });
    expect(await tallies.commit('t-3', CHUNKS_PER_TALLY, { token: 'z', succeeded: 1, failed: 0 })).toEqual({
      committed: false,
    });
    expect(sumTallies(await tallies.all('t-3')).chunks).toBe(1);
  });
});
