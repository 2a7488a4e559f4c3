import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import * as z from 'zod';
import { defineRowProcessor, defineTaskProcessor } from '../packages/processor/src/index.js';
import { bundleOptions } from './bundles.js';

/**
 * `npm run bench -- --scenarios kit`: what the processor kit costs a user. Size: a tiny Lambda
 * bundled as CDK bundles one, written by hand and with the kit, zod inside the bundle (the usual
 * case) and outside it (a layer); the kit's share is the difference (issue 18: ≤ 20 KB). Time: the
 * kit's overhead per task beyond the user's own function (≤ 1 ms), and per row of a chunk.
 */
const KIT = join(import.meta.dirname, '../packages/processor/src/index.ts');

const HANDWRITTEN = `import * as z from 'zod';
const input = z.object({ invoice: z.string(), n: z.number() });
export const handler = async (event) => {
  const parsed = input.safeParse(event.task.input);
  if (!parsed.success) return { status: 'error', error: { code: 'INVALID_INPUT', message: parsed.error.message, retryable: false } };
  return { status: 'ok', result: { doubled: parsed.data.n * 2 } };
};
`;
const WITH_KIT = `import * as z from 'zod';
import { defineTaskProcessor } from ${JSON.stringify(KIT)};
export const handler = defineTaskProcessor({ input: z.object({ invoice: z.string(), n: z.number() }), run: ({ n }) => ({ doubled: n * 2 }) });
`;
const ROWS_WITH_KIT = `import * as z from 'zod';
import { defineRowProcessor } from ${JSON.stringify(KIT)};
export const handler = defineRowProcessor({ row: z.object({ invoice: z.string(), n: z.number() }), concurrency: 4, run: ({ n }, ctx) => { ctx.outputs.write('n', String(n)); return n * 2; } });
`;
/** Everything the kit has, for the upper bound. */
const WITH_ALL = `import * as z from 'zod';
import { defineRowProcessor, defineTaskProcessor, fetchHandler, nodeListener, verifySignature } from ${JSON.stringify(KIT)};
export const task = defineTaskProcessor({ input: z.object({ invoice: z.string(), n: z.number() }), run: ({ n }) => ({ doubled: n * 2 }) });
export const rows = defineRowProcessor({ row: z.string(), run: (row) => row.length });
export const http = [fetchHandler(task, { secret: 's' }), nodeListener(rows, { secret: 's' }), verifySignature];
`;

async function sizes() {
  const dir = mkdtempSync(join(tmpdir(), 'kit-bench-'));
  try {
    const sized = async (name: string, source: string, zodOutside: boolean) => {
      const entry = join(dir, `${name}.mjs`);
      const outfile = join(dir, `${name}${zodOutside ? '-ext' : ''}.out.mjs`);
      writeFileSync(entry, source);
      await build({
        ...bundleOptions(entry, outfile),
        // The user's zod is the kit's zod: resolve it from this repository, as a user's own install.
        nodePaths: [join(import.meta.dirname, '../node_modules')],
        ...(zodOutside ? { external: ['zod'] } : {}),
      });
      const code = readFileSync(outfile);
      return { bytes: code.length, gzipBytes: gzipSync(code).length };
    };
    const table: Record<string, { bytes: number; gzipBytes: number; kitBytes: number; kitGzipBytes: number }> = {};
    for (const zodOutside of [false, true]) {
      const base = await sized('handwritten', HANDWRITTEN, zodOutside);
      for (const [name, source] of [
        ['handwritten', HANDWRITTEN],
        ['defineTaskProcessor', WITH_KIT],
        ['defineRowProcessor', ROWS_WITH_KIT],
        ['whole kit', WITH_ALL],
      ] as const) {
        const size = name === 'handwritten' ? base : await sized(name.replace(' ', '-'), source, zodOutside);
        table[`${name}, zod ${zodOutside ? 'external' : 'bundled'}`] = {
          ...size,
          kitBytes: size.bytes - base.bytes,
          kitGzipBytes: size.gzipBytes - base.gzipBytes,
        };
      }
    }
    return table;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean microseconds per call over `n` calls, after as many to warm up. */
async function perCall(n: number, call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < n; i++) await call();
  const start = performance.now();
  for (let i = 0; i < n; i++) await call();
  return ((performance.now() - start) * 1000) / n;
}

async function overhead(n = 20_000) {
  const input = z.object({ invoice: z.string(), lines: z.array(z.object({ sku: z.string(), qty: z.number() })) });
  const run = (value: z.output<typeof input>) => ({ invoice: value.invoice, count: value.lines.length });
  const event = {
    job: { id: 'job-1', type: 'invoice' },
    task: {
      id: 'job-1.0',
      processor: 'invoice.render',
      attempt: 1,
      input: { invoice: 'INV-7', lines: [{ sku: 'A', qty: 1 }] },
    },
  };
  const context = { getRemainingTimeInMillis: () => 30_000 };
  const task = defineTaskProcessor({ input, run });
  const polled = defineTaskProcessor({ input, run, cancelOnAbort: { everySeconds: 5, isAborted: () => false } });
  // The user's own function alone: the same validation and work, no kit.
  const bare = async () => run(input.parse(event.task.input));
  const bareUs = await perCall(n, bare);
  const kitUs = await perCall(n, () => task(event, context));
  const pollUs = await perCall(n, () => polled(event, context));

  const rows = Array.from({ length: 100 }, (_, i) => ({ line: i + 1, input: { sku: `S${i}`, qty: i } }));
  const row = z.object({ sku: z.string(), qty: z.number() });
  const rowRun = (value: z.output<typeof row>) => value.qty * 2;
  const chunk = { job: event.job, chunk: { index: 0, attempt: 1, context: {}, rows } };
  const processor = defineRowProcessor({ row, concurrency: 4, run: rowRun });
  const bareRowsUs = await perCall(n / 100, async () => rows.map(({ input: value }) => rowRun(row.parse(value))));
  const kitRowsUs = await perCall(n / 100, () => processor(chunk, context));
  const round = (us: number) => Number(us.toFixed(1));
  return {
    perTask: {
      userFunctionUs: round(bareUs),
      withKitUs: round(kitUs),
      kitOverheadUs: round(kitUs - bareUs),
      withCancelOnAbortUs: round(pollUs),
    },
    perChunkOf100Rows: {
      userFunctionUs: round(bareRowsUs),
      withKitUs: round(kitRowsUs),
      kitOverheadPerRowUs: round((kitRowsUs - bareRowsUs) / 100),
    },
  };
}

export async function kitBench() {
  return { bundles: await sizes(), overhead: await overhead() };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await kitBench();
  console.table(result.bundles);
  console.log(JSON.stringify(result.overhead, null, 2));
}
