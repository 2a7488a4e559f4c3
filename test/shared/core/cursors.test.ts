import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Finder } from '../../../shared/core/find.js';
import { Cursors, type JobIndex, searchJobsQuerySchema } from '../../../shared/core/search.js';

const cursors = new Cursors(async () => 'the-right-key');
const position = z.strictObject({ l: z.number().int().min(1) });

/** An index a refused cursor must never reach. */
const untouchable: JobIndex = {
  read: async () => {
    throw new Error('read the index with a refused cursor');
  },
  load: async () => {
    throw new Error('loaded jobs with a refused cursor');
  },
};

const refusal = { code: 'VALIDATION_FAILED', details: [expect.objectContaining({ path: 'cursor' })] };
const unsound = {
  code: 'VALIDATION_FAILED',
  details: [{ path: 'cursor', message: 'the cursor does not hold a valid position' }],
};

describe('cursors', () => {
  it('open what they sealed, for the same query', async () => {
    const sealed = await cursors.seal({ l: 101 }, 'rows|j1|');
    expect(await cursors.open(sealed, 'rows|j1|', position)).toEqual({ l: 101 });
    await expect(cursors.open(sealed, 'rows|j2|', position)).rejects.toMatchObject(refusal);
    await expect(new Cursors(async () => 'another-key').open(sealed, 'rows|j1|', position)).rejects.toMatchObject(
      refusal,
    );
  });

  it('refuse a validly signed payload that is not a sound position', async () => {
    for (const payload of [{ l: -3 }, { l: 0 }, { l: 1.5 }, { l: '7' }, { l: null }, {}, { l: 2, extra: 1 }]) {
      const forged = await cursors.seal(payload, 'rows|j1|');
      await expect(cursors.open(forged, 'rows|j1|', position), JSON.stringify(payload)).rejects.toMatchObject(unsound);
    }
  });

  it('refuse Find cursors whose position is not an index key, before reading anything', async () => {
    const finder = new Finder(untouchable, cursors);
    const jobsPrint = JSON.stringify(['jobs', 'o', undefined, undefined, undefined, undefined, 'desc', []]);
    const tasksPrint = JSON.stringify(['tasks', 'o', undefined, undefined, undefined, 'desc']);
    for (const o of ['', 'zzz', '9', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z#a b', 42]) {
      const forged = await cursors.seal({ o }, jobsPrint);
      await expect(finder.jobs('o', searchJobsQuerySchema.parse({ cursor: forged }))).rejects.toMatchObject(unsound);
    }
    const o = '2026-01-01T00:00:00.000Z#j0123';
    for (const t of [-1, 0.5, 1e9, '3']) {
      const forged = await cursors.seal({ o, t }, tasksPrint);
      await expect(finder.tasks('o', { order: 'desc', limit: 10, cursor: forged })).rejects.toMatchObject(unsound);
    }
  });
});
