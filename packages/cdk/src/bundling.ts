/**
 * How a function's code is bundled, declared once: the construct hands these settings to
 * NodejsFunction when it builds from sources, and the package's build runs esbuild with the same
 * ones for the bundles it ships (scripts/bundle-functions.ts), so both deploy the same code.
 * No aws-cdk-lib import here: the build script runs without the construct.
 */
export const BUNDLING = {
  format: 'esm',
  target: 'node24',
  minify: true,
  sourceMap: true,
  mainFields: ['module', 'main'],
  // Bundle the AWS SDK too: tree-shaken and pinned, rather than the runtime's copy.
  externalModules: [] as string[],
  /**
   * Modules the bundle takes from the project instead (paths from its root): the SDK's default
   * credential chain, of which Lambda only ever answers the first link (the environment), gives
   * way to that link alone, and the STS and SSO clients of the others stay out.
   */
  alias: { '@aws-sdk/credential-provider-node': './shared/lambda/credentials.ts' } as Record<string, string>,
  // Some CommonJS dependencies call require(); an ES module has none of its own.
  banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
  /** What NodejsFunction names an ESM bundle: the handler is `index.<export>`. */
  outfile: 'index.mjs',
} as const;

/** The same settings in esbuild's own terms (what NodejsFunction passes on its command line, run in `projectRoot`). */
export function esbuildOptions(entry: string, outfile: string, projectRoot: string) {
  return {
    absWorkingDir: projectRoot,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node' as const,
    format: BUNDLING.format,
    target: BUNDLING.target,
    minify: BUNDLING.minify,
    sourcemap: BUNDLING.sourceMap,
    mainFields: [...BUNDLING.mainFields],
    external: [...BUNDLING.externalModules],
    alias: { ...BUNDLING.alias },
    banner: { js: BUNDLING.banner },
    logLevel: 'error' as const,
  };
}
