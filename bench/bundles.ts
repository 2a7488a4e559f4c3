import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type BuildOptions, build } from 'esbuild';
import { BUNDLING, esbuildOptions } from '../packages/cdk/src/bundling.js';
import { resources } from '../shared/resources.js';

const root = join(import.meta.dirname, '..');

/** How the JobManager construct bundles a handler (packages/cdk/src/bundling.ts): one file, SDK inside. */
export function bundleOptions(entry: string, outfile: string): BuildOptions {
  // The bench measures the code alone; the deployed source map is a file beside it.
  return { ...esbuildOptions(entry, outfile, root), sourcemap: false };
}

/**
 * The module that times one cold init: the bundle loaded as the Lambda runtime loads its format
 * (an ES module by `import()`, CommonJS by `require`), in a process that has loaded nothing else.
 */
function probeSource(outfile: string): string {
  const load =
    BUNDLING.format === 'esm'
      ? `await import(${JSON.stringify(outfile)})`
      : `(await import('node:module')).createRequire(import.meta.url)(${JSON.stringify(outfile)})`;
  return `const t = performance.now(); ${load}; console.log(performance.now() - t);`;
}

export interface BundleMeasure {
  bytes: number;
  gzipBytes: number;
  /** The median cold init of `runs` fresh processes. */
  coldInitMs: number;
  /** The fastest of them: the least disturbed by whatever else the machine runs. */
  minInitMs: number;
}

/**
 * Per function: the bundle CDK would deploy (the construct's esbuild settings) and the cold init
 * of its module — the time a fresh Node process takes to load it. The runs go round the functions
 * in turns, so a change in the machine's load falls on all of them alike.
 */
export async function measureBundles(runs = 5): Promise<Record<string, BundleMeasure>> {
  const dir = mkdtempSync(join(tmpdir(), 'jobs-bundles-'));
  try {
    const built = [];
    for (const [name, fn] of Object.entries(resources.functions)) {
      const outfile = join(dir, name, BUNDLING.outfile);
      await build(bundleOptions(join(root, fn.entry), outfile));
      const probe = join(dir, `${name}-probe.mjs`);
      writeFileSync(probe, probeSource(outfile));
      built.push({ name, code: readFileSync(outfile), probe, times: [] as number[] });
    }
    for (let run = 0; run < runs; run++) {
      for (const bundle of built) {
        const out = execFileSync(process.execPath, [bundle.probe], {
          encoding: 'utf8',
          env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR' },
        });
        bundle.times.push(Number(out));
      }
    }
    const ms = (value: number) => Number(value.toFixed(1));
    return Object.fromEntries(
      built.map(({ name, code, times }) => {
        const sorted = times.sort((a, b) => a - b);
        const measure: BundleMeasure = {
          bytes: code.length,
          gzipBytes: gzipSync(code).length,
          coldInitMs: ms(sorted[Math.floor(runs / 2)] as number),
          minInitMs: ms(sorted[0] as number),
        };
        return [name, measure];
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // `npx tsx bench/bundles.ts [runs]`: more runs steady the median on a busy machine.
  console.table(await measureBundles(Number(process.argv[2] ?? 5)));
}
