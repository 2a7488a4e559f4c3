import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { bundleOptions } from '../../bench/bundles.js';
import { resources } from '../../shared/resources.js';

const root = join(import.meta.dirname, '../..');

/** The files a function's deployed bundle holds. */
async function bundled(entry: string): Promise<string[]> {
  const result = await build({
    ...bundleOptions(join(root, entry), join(root, 'cdk.out/bundle-probe.mjs')),
    write: false,
    metafile: true,
  });
  return Object.values(result.metafile.outputs).flatMap((output) => Object.keys(output.inputs));
}

const holds = (files: string[], pkg: string) => files.some((file) => file.includes(`node_modules/${pkg}/`));

describe('function bundles', () => {
  it.each(Object.entries(resources.functions))('%s holds only the SDK clients it calls', async (name, fn) => {
    const files = await bundled(fn.entry);
    expect(holds(files, '@aws-sdk/client-dynamodb')).toBe(true);
    // Only the worker calls processors (Lambda targets); the others never build a Lambda client.
    expect(holds(files, '@aws-sdk/client-lambda')).toBe(name === 'worker');
    // zod's other languages were a third of every bundle; its messages here are English.
    expect(files.filter((file) => /zod\/v4\/locales\/(?!en\.js)/.test(file))).toEqual([]);
  });
});
