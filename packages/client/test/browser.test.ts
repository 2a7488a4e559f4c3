import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { measureClientSize } from '../bench/size.js';

describe('the client in a browser', () => {
  it('bundles for a browser with no Node import, its core within 15 KB minified + gzipped', async () => {
    const sizes = await measureClientSize();
    expect(sizes.core).toBeLessThanOrEqual(15 * 1024);
  });

  it("checks a body with the server's schemas where no Node global (Buffer) exists", async () => {
    const bundle = await build({
      entryPoints: [join(import.meta.dirname, '../src/validate.ts')],
      bundle: true,
      platform: 'browser',
      format: 'iife',
      globalName: 'validate',
      write: false,
      logLevel: 'silent',
    });
    // A fresh realm: only what a browser has (TextEncoder, URL), and none of Node's globals.
    const realm = { TextEncoder, URL };
    const validate = runInNewContext(`${bundle.outputFiles[0]!.text}; validate`, realm);
    const body = { type: 'report', meta: { team: 'ops' }, tasks: [{ processor: 'demo.echo', input: { n: 1 } }] };
    expect(() => validate.checkSubmission(body)).not.toThrow();
    const batch = {
      type: 'import',
      batch: { processor: 'demo.rows', rows: [{ n: 1 }], context: { big: 'x'.repeat(70_000) } },
    };
    expect(() => validate.checkSubmission(batch)).toThrow(/does not match the contract/);
  });
});
