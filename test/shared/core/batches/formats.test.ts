import { describe, expect, it } from 'vitest';
import { DEFAULT_READ_LIMITS, readRows, rowsText } from '../../../../shared/core/batches/formats.js';
import type { BatchPart } from '../../../../shared/core/batches/model.js';

/**
 * A body as a store hands it over: chunks of uneven sizes (a fixed sequence, so a failure
 * repeats), so every kind of boundary (inside a multi-byte character, between `\r` and `\n`)
 * falls on some chunk's edge.
 */
async function* chunks(bytes: Uint8Array, from = 0): AsyncIterable<Uint8Array> {
  let seed = 17;
  for (let at = from; at < bytes.length; ) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const size = 1 + (seed % 4096);
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

describe('reading rows: every row counted, lines bounded', () => {
  // biome-ignore lint/suspicious/noExplicitAny: rows are read as the planner reads them
  const read = async (body: string, format: 'csv' | 'jsonl', options: any = {}, from?: any) => {
    const bytes = Buffer.from(body);
    const part: BatchPart = { kind: 'file', bucket: 'in', key: `read.${format}`, format };
    const rows = [];
    const limits = { ...DEFAULT_READ_LIMITS, ...options };
    for await (const row of readRows([part], (_, byte) => chunks(bytes, byte), limits, from)) rows.push(row);
    return rows;
  };
  const good = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => `${from + i},fine ${from + i}`);

  it('fails a stray quote alone: the 1,001 rows after it are read, not swallowed', async () => {
    const csv = ['n,memo', '1,ok', '2,"oops', ...good(3, 1003)].join('\n');
    const rows = await read(csv, 'csv');
    expect(rows).toHaveLength(1003);
    expect(rows[1]).toMatchObject({ at: { fileLine: 3 } });
    expect(rows[1]!.invalid).toMatch(/quoted field/);
    expect(rows.filter((r) => r.invalid !== undefined)).toHaveLength(1);
    expect(rows[1002]!.input).toEqual({ n: '1003', memo: 'fine 1003' });
  });

  it('does not let a second stray quote close the first one over the rows between', async () => {
    const csv = ['n,memo', '1,"oops', ...good(2, 11), '12,late" quote', ...good(13, 14)].join('\n');
    const rows = await read(csv, 'csv');
    expect(rows.map((r) => (r.invalid === undefined ? (r.input as { n: string }).n : 'bad'))).toEqual([
      'bad',
      ...good(2, 11).map((l) => l.split(',')[0]),
      'bad',
      '13',
      '14',
    ]);
  });

  it('reads a quoted field over up to maxQuotedLines lines; past it the record fails and reading goes on', async () => {
    const field = (lines: number) => Array.from({ length: lines }, (_, i) => `l${i + 1}`).join('\n');
    const within = await read(`n,memo\n1,"${field(3)}"\n2,ok\n`, 'csv', { maxQuotedLines: 3 });
    expect(within.map((r) => r.input)).toEqual([
      { n: '1', memo: 'l1\nl2\nl3' },
      { n: '2', memo: 'ok' },
    ]);
    const past = await read(`n,memo\n1,"${field(4)}"\n2,ok\n`, 'csv', { maxQuotedLines: 3 });
    expect(past[0]!.invalid).toMatch(/quoted field .*3 lines/);
    // The lines the field ran over are read as rows of their own (here: ragged), then row 2.
    expect(past.at(-1)!.input).toEqual({ n: '2', memo: 'ok' });
    expect(past.map((r) => r.at.fileLine)).toEqual([2, 3, 4, 5, 6]);
  });

  it('fails a record past maxLineBytes, even one whose quoted lines are each short', async () => {
    const field = Array.from({ length: 50 }, () => 'x'.repeat(30)).join('\n');
    const rows = await read(`n,memo\n1,"${field}"\n2,ok\n`, 'csv', { maxLineBytes: 1000 });
    expect(rows[0]!.invalid).toMatch(/1000 bytes/);
    expect(rows.at(-1)!.input).toEqual({ n: '2', memo: 'ok' });
  });

  it('fails a 50 MB JSON Lines line as one bad row and reads the rows after it', async () => {
    const body = `{"n":1}\n{"pad":"${'x'.repeat(50 * 1024 * 1024)}"}\n{"n":3}\n`;
    const rows = await read(body, 'jsonl');
    expect(rows).toHaveLength(3);
    expect(rows[1]!.invalid).toMatch(/longer than 1048576 bytes/);
    expect(rows[1]!.at).toEqual({ part: 0, byte: 8, fileLine: 2 });
    expect(rows[2]).toMatchObject({ input: { n: 3 }, at: { fileLine: 3 } });
    expect(rows[2]!.at.byte).toBe(Buffer.byteLength(body) - 8);
  }, 60_000);

  it('fails a 20 MB CSV field as one bad row and reads the rows after it', async () => {
    const rows = await read(`n,memo\n1,"${'x'.repeat(20 * 1024 * 1024)}"\n2,ok\n`, 'csv');
    expect(rows).toHaveLength(2);
    expect(rows[0]!.invalid).toMatch(/longer than 1048576 bytes/);
    expect(rows[1]!.input).toEqual({ n: '2', memo: 'ok' });
  }, 60_000);

  it('reads lines cut anywhere by the body chunks: CRLF, a byte-order mark, multi-byte characters', async () => {
    // Lines of many lengths, so every kind of boundary falls on some chunk edge.
    const values = Array.from({ length: 3000 }, (_, i) => ({ i, s: 'Zoë€😀'.repeat(i % 97) }));
    const body = `\uFEFF${values.map((v) => JSON.stringify(v)).join('\r\n')}\r\n\r\n`;
    const rows = await read(body, 'jsonl');
    expect(rows.map((r) => r.input)).toEqual(values);
    // Every row's place, resumed from, gives the same rows from there on.
    const from = rows[1777]!.at;
    const resumed = await read(body, 'jsonl', {}, from);
    expect(resumed.map((r) => r.input)).toEqual(values.slice(1777));
  });

  it('resumes after a failed quote as a whole read does', async () => {
    const csv = ['n,memo', ...good(1, 5), '6,"oops', ...good(7, 20)].join('\n');
    const whole = await read(csv, 'csv');
    const resumed = await read(csv, 'csv', {}, whole[6]!.at);
    expect(resumed).toEqual(whole.slice(6));
  });

  it('holds files to maxLineBytes, but not the rows the API took and stored itself', async () => {
    const bucket = 'ours';
    const limits = { ...DEFAULT_READ_LIMITS, maxLineBytes: 10 };
    const row = { memo: 'x'.repeat(100) };
    const stored = Buffer.from(rowsText([row]));
    const read = async (part: BatchPart) => {
      const rows = [];
      for await (const r of readRows([part], (_, byte) => chunks(stored, byte), limits)) rows.push(r);
      return rows;
    };
    expect((await read({ kind: 'rows', key: 'in/stored-rows.jsonl', rows: 1 })).map((r) => r.input)).toEqual([row]);
    const asFile = await read({ kind: 'file', bucket, key: 'in/stored-rows.jsonl', format: 'jsonl' });
    expect(asFile[0]!.invalid).toMatch(/longer than 10 bytes/);
  });

  it('refuses to read rows under a CSV header it cannot read, instead of reading none', async () => {
    await expect(read('n,"memo\n1,x\n2,y\n', 'csv')).rejects.toThrow(/CSV header/);
    await expect(read('n,n\n1,x\n', 'csv')).rejects.toThrow(/CSV header.*'n' twice/);
  });
});
