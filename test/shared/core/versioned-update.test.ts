import { describe, expect, it, vi } from 'vitest';
import { NotFoundError } from '../../../shared/core/errors.js';
import { ConflictError, VersionedUpdates } from '../../../shared/core/versioned-update.js';

interface Counter {
  id: string;
  version: number;
  seen: string[];
}

/** One item per id in memory, counting reads and writes; `interfere` lands another process's write first. */
function store(initial: Counter[] = [{ id: 'a', version: 1, seen: [] }]) {
  const items = new Map(initial.map((item) => [item.id, structuredClone(item)]));
  const counts = { reads: 0, writes: 0, refused: 0 };
  let interfere = 0;
  return {
    counts,
    items,
    interfereNext(times: number) {
      interfere = times;
    },
    ports: {
      async read(id: string) {
        counts.reads++;
        await new Promise((r) => setTimeout(r, 5));
        const item = items.get(id);
        return item && structuredClone(item);
      },
      async replace(item: Counter, expectedVersion: number) {
        await new Promise((r) => setTimeout(r, 5));
        const stored = items.get(item.id)!;
        if (interfere > 0) {
          interfere--;
          items.set(item.id, { ...stored, version: stored.version + 1, seen: [...stored.seen, 'elsewhere'] });
        }
        if (items.get(item.id)!.version !== expectedVersion) {
          counts.refused++;
          return false;
        }
        counts.writes++;
        items.set(item.id, structuredClone(item));
        return true;
      },
    },
  };
}

const append = (mark: string) => (item: Counter) => ({
  write: { ...item, version: item.version + 1, seen: [...item.seen, mark] },
  value: [...item.seen, mark].join(','),
});

describe('changes of one job from one process', () => {
  it('that queue up while a turn is under way go together: one read and one write, each caller answered as if alone', async () => {
    const { ports, counts, items } = store();
    const updates = new VersionedUpdates(ports);
    const answers = await Promise.all(['1', '2', '3', '4', '5'].map((mark) => updates.apply('a', append(mark))));
    // The first change had the job to itself; the four that arrived meanwhile shared the next turn.
    expect(counts).toEqual({ reads: 2, writes: 2, refused: 0 });
    expect(answers).toEqual(['1', '1,2', '1,2,3', '1,2,3,4', '1,2,3,4,5']);
    expect(items.get('a')!.seen).toEqual(['1', '2', '3', '4', '5']);
  });

  it('leave out a change that refuses, and write the others', async () => {
    const { ports, items } = store();
    const updates = new VersionedUpdates(ports);
    const refuse = () => {
      throw new NotFoundError('No job a');
    };
    const [one, two, three] = await Promise.allSettled([
      updates.apply('a', append('1')),
      updates.apply('a', refuse),
      updates.apply('a', append('3')),
    ]);
    expect(one).toEqual({ status: 'fulfilled', value: '1' });
    expect(two).toMatchObject({ status: 'rejected', reason: expect.any(NotFoundError) });
    expect(three).toEqual({ status: 'fulfilled', value: '1,3' });
    expect(items.get('a')!.seen).toEqual(['1', '3']);
  });

  it('are applied again on what another process wrote when it won the race', async () => {
    const { ports, counts, items, interfereNext } = store();
    const updates = new VersionedUpdates(ports);
    interfereNext(1);
    const answers = await Promise.all([updates.apply('a', append('1')), updates.apply('a', append('2'))]);
    expect(counts.refused).toBe(1);
    expect(answers).toEqual(['elsewhere,1', 'elsewhere,1,2']);
    expect(items.get('a')!.seen).toEqual(['elsewhere', '1', '2']);
  });

  it('answer a missing job as each caller asked: undefined, or not found', async () => {
    const { ports } = store([]);
    const updates = new VersionedUpdates(ports);
    const [quiet, loud] = await Promise.allSettled([
      updates.apply('a', append('1'), { missing: 'undefined' }),
      updates.apply('a', append('2')),
    ]);
    expect(quiet).toEqual({ status: 'fulfilled', value: undefined });
    expect(loud).toMatchObject({ status: 'rejected', reason: expect.any(NotFoundError) });
  });

  it('start from the item a caller vouches for without reading it, and read again when it was stale', async () => {
    const { ports, counts, items } = store();
    const updates = new VersionedUpdates(ports);
    expect(await updates.apply('a', append('1'), { first: structuredClone(items.get('a')!) })).toBe('1');
    expect(counts.reads).toBe(0);
    const stale = { id: 'a', version: 1, seen: [] };
    expect(await updates.apply('a', append('2'), { first: stale })).toBe('1,2');
    expect(counts).toMatchObject({ reads: 1, refused: 1 });
  });

  it('give up with a ConflictError when every try loses, and the next change still gets its turn', async () => {
    const { ports, interfereNext } = store();
    const updates = new VersionedUpdates(ports);
    interfereNext(Number.POSITIVE_INFINITY);
    vi.useFakeTimers();
    try {
      const lost = expect(updates.apply('a', append('1'))).rejects.toBeInstanceOf(ConflictError);
      await vi.runAllTimersAsync();
      await lost;
    } finally {
      vi.useRealTimers();
    }
    interfereNext(0);
    expect(await updates.apply('a', append('2'))).toMatch(/,2$/);
  });
});
