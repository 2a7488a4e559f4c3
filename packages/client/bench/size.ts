import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const src = join(root, 'src');

/** Bytes, minified + gzipped. */
export interface ClientSizes {
  /** What a browser app's bundle loads for `import { JobsClient }`: the entry and every chunk it imports statically. */
  core: number;
  /** Loaded on first use only, beyond the core: the SigV4 signer (auth.type 'iam') and the server's schemas (validation). */
  sigv4: number;
  validate: number;
  /** `./sqs` beyond the core, without the SQS client it is given (a peer dependency). */
  sqs: number;
}

/**
 * Bundled for a browser as an app's bundler would (esbuild, code splitting, so each dynamic
 * import is a chunk of its own); a Node-only import anywhere in it fails the build. The Node-only
 * credential chain and the SQS client stay out: a browser gives credentials and brings its own client.
 */
export async function measureClientSize(): Promise<ClientSizes> {
  const result = await build({
    entryPoints: { index: join(src, 'index.ts'), sqs: join(src, 'sqs.ts') },
    bundle: true,
    minify: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: ['@aws-sdk/credential-providers', '@aws-sdk/client-sqs'],
    absWorkingDir: root,
    outdir: 'size-probe',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const outputs = result.metafile.outputs;
  const gz = new Map(result.outputFiles.map((file) => [relative(root, file.path), gzipSync(file.contents).length]));
  const chunkOf = (input: string) => {
    const found = Object.entries(outputs).find(([, output]) =>
      Object.keys(output.inputs).some((i) => i.endsWith(input)),
    );
    if (!found) throw new Error(`no chunk holds ${input}`);
    return found[0];
  };
  /** A chunk and what it imports statically: what loads when it does. */
  const closure = (file: string, seen = new Set<string>()): Set<string> => {
    if (seen.has(file)) return seen;
    seen.add(file);
    for (const dep of outputs[file]?.imports ?? []) {
      if (dep.kind === 'import-statement' && !dep.external) closure(dep.path, seen);
    }
    return seen;
  };
  const core = closure(chunkOf('src/index.ts'));
  const beyondCore = (input: string) =>
    [...closure(chunkOf(input))].filter((file) => !core.has(file)).reduce((sum, file) => sum + (gz.get(file) ?? 0), 0);
  return {
    core: [...core].reduce((sum, file) => sum + (gz.get(file) ?? 0), 0),
    sigv4: beyondCore('src/sigv4.ts'),
    validate: beyondCore('src/validate.ts'),
    sqs: beyondCore('src/sqs.ts'),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = await measureClientSize();
  console.table(
    Object.fromEntries(
      Object.entries(sizes).map(([name, bytes]) => [name, { 'KB min+gz': +(bytes / 1024).toFixed(1) }]),
    ),
  );
}
