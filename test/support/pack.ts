import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type Packed = { filename: string; files: { path: string }[] };

/**
 * `npm pack --json` of a package whose dist/ is already built, into `destination`. Its prepack
 * (the build) is skipped so that npm's stdout holds only the JSON: a build's log lines share that
 * stdout and, where the environment sets `CI`, carry colour escapes (`\x1b[34mCLI…`) whose `[`
 * no search for the JSON's opening bracket can tell apart from it.
 */
export async function packBuilt(dir: string, destination: string): Promise<Packed> {
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', destination], {
    cwd: dir,
  });
  return (JSON.parse(stdout) as Packed[])[0]!;
}
