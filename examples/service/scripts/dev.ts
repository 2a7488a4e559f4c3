import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main as submit } from '../src/submit.js';

/** This service's folder, and the job manager's repository, whose `npm start` is the local stack. */
export const SERVICE = fileURLToPath(new URL('..', import.meta.url));
export const REPOSITORY = resolve(SERVICE, '..', '..');

export interface LocalJobs {
  /** The local API's base URL. */
  endpoint: string;
  /** Everything the stack printed so far. */
  output(): string;
  /** SIGTERM to the stack (it stops its emulators), SIGKILL if it has not exited within 20 s. */
  stop(): Promise<void>;
}

/**
 * `npm start` of the job manager with this service's processors: the registry in
 * `processors.local.json` (PROCESSORS_FILE) and the handler modules in `functions.local.json`
 * (LOCAL_FUNCTIONS, paths relative to this folder), without the demo processors, on a free port
 * and a throwaway state folder. Answers once `GET /v1/health` does.
 */
export async function startLocalJobs(options: { echo?: boolean; timeoutMs?: number } = {}): Promise<LocalJobs> {
  const { echo = false, timeoutMs = 120_000 } = options;
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), 'invoice-service-'));
  const functions = JSON.parse(readFileSync(join(SERVICE, 'functions.local.json'), 'utf8')) as Record<
    string,
    { module: string }
  >;
  // Absolute paths: npm start resolves relative ones against the folder it was started from.
  for (const fn of Object.values(functions)) fn.module = resolve(SERVICE, fn.module);

  // A process group of its own, so the stop reaches npm, tsx and the stack under them alike.
  const child = spawn('npm', ['start', '--', '--state-dir', stateDir], {
    cwd: REPOSITORY,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PORT: String(port),
      PROCESSORS_FILE: join(SERVICE, 'processors.local.json'),
      LOCAL_FUNCTIONS: JSON.stringify(functions),
      DEMO_PROCESSORS: 'off',
    },
  });
  let output = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (text: string) => {
      output += text;
      if (echo) process.stderr.write(text.replace(/^(?=.)/gm, '[jobs] '));
    });
  }
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        signalGroup(child, 'SIGTERM');
        const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(stateDir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const endpoint = `http://127.0.0.1:${port}`;
  const until = Date.now() + timeoutMs;
  let early: number | null | undefined;
  void exited.then((code) => {
    early = code;
  });
  for (;;) {
    if (early !== undefined) {
      await stop();
      throw new Error(`npm start exited (${early}) before it was healthy:\n${output.slice(-4000)}`);
    }
    if (Date.now() > until) {
      await stop();
      throw new Error(`npm start was not healthy within ${timeoutMs} ms:\n${output.slice(-4000)}`);
    }
    const healthy = await fetch(`${endpoint}/v1/health`).then(
      (response) => response.ok,
      () => false,
    );
    if (healthy) return { endpoint, output: () => output, stop };
    await new Promise((wake) => setTimeout(wake, 250));
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals) {
  try {
    process.kill(-(child.pid as number), signal);
  } catch {
    // Already gone.
  }
}

/** A port nobody listens on now (the stack takes it a moment later). */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** `npm run dev`: the local stack with this service's processors, the submitter against it, then a clean stop. */
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.error('dev: starting the local stack with processors.local.json …');
  const jobs = await startLocalJobs({ echo: process.env.DEV_ECHO === '1' });
  console.error(`dev: local stack healthy at ${jobs.endpoint}; running the submitter`);
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      void jobs.stop().then(() => process.exit(130));
    });
  }
  let code = 1;
  try {
    code = await submit(process.argv.slice(2), { ...process.env, JOBS_ENDPOINT: jobs.endpoint });
  } finally {
    if (!interrupted) {
      console.error('dev: stopping the local stack');
      await jobs.stop();
    }
  }
  process.exitCode = code;
}
