import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { bundleOptions } from '../../bench/bundles.js';
import { resources } from '../../shared/resources.js';

const root = join(import.meta.dirname, '../..');

/** A function's deployed bundle: its size (minified, as the construct builds it) and the files it holds. */
async function bundleOf(entry: string): Promise<{ bytes: number; files: string[] }> {
  const result = await build({
    ...bundleOptions(join(root, entry), join(root, 'cdk.out/bundle-probe.js')),
    write: false,
    metafile: true,
  });
  const outputs = Object.values(result.metafile.outputs);
  return {
    bytes: outputs.reduce((sum, output) => sum + output.bytes, 0),
    files: outputs.flatMap((output) => Object.keys(output.inputs)),
  };
}

const builds = new Map<string, ReturnType<typeof bundleOf>>();
/** Each function is built once for all the checks on it. */
function bundled(entry: string) {
  if (!builds.has(entry)) builds.set(entry, bundleOf(entry));
  return builds.get(entry)!;
}

const holds = (files: string[], pkg: string) => files.some((file) => file.includes(`node_modules/${pkg}/`));

/**
 * What each bundle may weigh, in minified bytes: what it weighs now and a little room. Cold init
 * follows the bytes (most of it is compiling them), so growth past this is a choice to make
 * knowingly — `npx tsx bench/bundles.ts` times it — not something a dependency does unnoticed.
 */
const BUDGET_BYTES: Record<keyof typeof resources.functions, number> = {
  api: 735_000,
  worker: 790_000,
  submitConsumer: 680_000,
  sweeper: 675_000,
  deadLetters: 680_000,
};

describe('function bundles', () => {
  it.each(Object.entries(resources.functions))('%s holds only the SDK clients it calls', async (name, fn) => {
    const { files } = await bundled(fn.entry);
    expect(holds(files, '@aws-sdk/client-dynamodb')).toBe(true);
    // Only the worker calls processors (Lambda targets); the others never build a Lambda client.
    expect(holds(files, '@aws-sdk/client-lambda')).toBe(name === 'worker');
    // Secrets: the API's cursor key, the worker's HTTP processors' signing secrets.
    expect(holds(files, '@aws-sdk/client-secrets-manager')).toBe(name === 'api' || name === 'worker');
    // Lambda's credentials are in the environment: no profile, SSO or STS client rides along.
    expect(files.filter((file) => /node_modules\/@aws-sdk\/(credential-provider-|nested-clients)/.test(file))).toEqual(
      [],
    );
    // zod's other languages were a third of every bundle; its messages here are English.
    expect(files.filter((file) => /zod\/v4\/locales\/(?!en\.js)/.test(file))).toEqual([]);
  });

  it.each(Object.entries(resources.functions))('%s stays within its size budget', async (name, fn) => {
    const { bytes } = await bundled(fn.entry);
    expect(bytes).toBeLessThanOrEqual(BUDGET_BYTES[name as keyof typeof resources.functions]);
  });
});
