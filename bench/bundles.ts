import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type BuildOptions, build } from 'esbuild';
import { esbuildOptions } from '../packages/cdk/src/bundling.js';
import { resources } from '../shared/resources.js';

const root = join(import.meta.dirname, '..');

/** How the JobManager construct bundles a handler (packages/cdk/src/bundling.ts): one ESM file, SDK inside. */
export function bundleOptions(entry: string, outfile: string): BuildOptions {
  // The bench measures the code alone; the deployed source map is a file beside it.
  return { ...esbuildOptions(entry, outfile, root), sourcemap: false };
}

/**
 * Per function: the bundle CDK would deploy (the construct's esbuild settings) and the
 * cold init of its module — the median time a fresh Node process takes to import it.
 */
export async function measureBundles(runs = 5) {
  const dir = mkdtempSync(join(tmpdir(), 'jobs-bundles-'));
  try {
    const results: Record<string, { bytes: number; gzipBytes: number; coldInitMs: number }> = {};
    for (const [name, fn] of Object.entries(resources.functions)) {
      const outfile = join(dir, `${name}.mjs`);
      await build(bundleOptions(join(root, fn.entry), outfile));
      const code = readFileSync(outfile);
      const probe = join(dir, `${name}-probe.mjs`);
      writeFileSync(
        probe,
        `const t = performance.now(); await import(${JSON.stringify(outfile)}); console.log(performance.now() - t);`,
      );
      const times = Array.from({ length: runs }, () =>
        Number(
          execFileSync(process.execPath, [probe], {
            encoding: 'utf8',
            env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR' },
          }),
        ),
      ).sort((a, b) => a - b);
      results[name] = {
        bytes: code.length,
        gzipBytes: gzipSync(code).length,
        coldInitMs: Number((times[Math.floor(runs / 2)] as number).toFixed(1)),
      };
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.table(await measureBundles());
}
