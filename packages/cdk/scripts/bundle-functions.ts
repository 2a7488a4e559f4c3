import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { resources } from '../../../shared/resources.js';
import { BUNDLING, esbuildOptions } from '../src/bundling.js';

/**
 * The function bundles the package ships (`lambda/<key>/index.mjs`), built from this repository's
 * functions/* with the settings NodejsFunction uses at synth (src/bundling.ts), so an app using the
 * package deploys the code a synth from sources would, without these sources.
 */
const root = join(import.meta.dirname, '..', '..', '..');
const out = join(import.meta.dirname, '..', 'lambda');
rmSync(out, { recursive: true, force: true });
for (const [key, fn] of Object.entries(resources.functions)) {
  mkdirSync(join(out, key), { recursive: true });
  await build(esbuildOptions(join(root, fn.entry), join(out, key, BUNDLING.outfile), root));
  console.log(`bundled ${fn.entry} → lambda/${key}/${BUNDLING.outfile}`);
}
