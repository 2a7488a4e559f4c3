import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const pkg = join(import.meta.dirname, '..');
export const root = join(pkg, '../..');
export const cli = join(pkg, 'dist/cli.js');

/** Newest modification time under `paths` (files or folders). */
function newest(paths: string[]): number {
  let latest = 0;
  const visit = (path: string) => {
    const stats = statSync(path);
    if (stats.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
    else latest = Math.max(latest, stats.mtimeMs);
  };
  for (const path of paths) if (existsSync(path)) visit(path);
  return latest;
}

const exec = (command: string, args: string[], cwd: string) =>
  new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')}: exit ${code}\n${output}`)),
    );
  });

/**
 * Builds the client and the CLI (`npm run build -w …`) unless their dist is newer than their
 * sources, under a lock: test files run in parallel, and one rebuilding dist/ while another runs
 * the CLI from it would fail the second for no fault of the code.
 */
export async function buildOnce(): Promise<void> {
  const lock = join(pkg, '.build-lock');
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock left by a killed run is stale after two minutes.
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - since > 120_000) rmSync(lock, { force: true, recursive: true });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    const shared = [join(root, 'shared/core')];
    const packages = [
      { name: '@serverless-jobs/client', dir: join(root, 'packages/client'), entry: 'dist/index.js' },
      { name: '@serverless-jobs/cli', dir: pkg, entry: 'dist/cli.js' },
    ];
    for (const { name, dir, entry } of packages) {
      const built = existsSync(join(dir, entry)) ? statSync(join(dir, entry)).mtimeMs : 0;
      const sources = newest([...shared, join(dir, 'src'), join(dir, 'package.json'), join(dir, 'tsup.config.ts')]);
      if (built < sources) await exec('npm', ['run', 'build', '-w', name], root);
    }
  } finally {
    rmSync(lock, { force: true, recursive: true });
  }
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  input?: string;
  /** Run in a pseudo-terminal (util-linux `script`), 40 rows by 120 columns, as a user's shell would. */
  tty?: boolean;
  cwd?: string;
  /** The command to run instead of `node dist/cli.js` (an installed `jobs`). */
  command?: string[];
  /** Told of each chunk of stdout as it comes, with the child (to signal it, say). */
  onStdout?: (text: string, child: ChildProcess) => void;
}

/** util-linux `script`, which gives a child a pseudo-terminal; the TTY tests need it. */
export const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;

/**
 * The CLI as a child process, its exit code and both outputs. Async spawn only: the local stack
 * answers from this very process, which a spawnSync would block.
 */
export function jobs(args: string[], options: RunOptions = {}): Promise<Run> {
  const command = options.command ?? [process.execPath, cli];
  const [file, argv] = options.tty
    ? ['script', ['-qfec', `stty rows 40 cols 120; exec ${[...command, ...args].map(quote).join(' ')}`, '/dev/null']]
    : [command[0]!, [...command.slice(1), ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(file as string, argv as string[], {
      cwd: options.cwd ?? pkg,
      env: Object.fromEntries(
        Object.entries({ ...process.env, NO_COLOR: undefined, ...options.env }).filter(([, v]) => v !== undefined),
      ) as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      options.onStdout?.(stdout, child);
    });
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** JSON Lines as values. */
export const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** A stack trace's frames, which no output of the CLI may show. */
export const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m;
