import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalStack } from '../../../local/stack.js';

/**
 * `npx tsx packages/cli/bench/cli.ts [runs]`: how long `jobs get ID` takes from process start to
 * exit against the embedded local stack (target: a median within 400 ms), beside `jobs --version`
 * (start-up alone) and `node -e 0` (Node's own start). Builds the client and the CLI first; each
 * run is an async spawn, since the stack answers from this process, which makes the figure the
 * CLI's and the stack's together.
 */
const pkg = join(import.meta.dirname, '..');
const root = join(pkg, '../..');
const cli = join(pkg, 'dist/cli.js');

function exec(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`${args.join(' ')}: exit ${code}`)),
    );
  });
}

export interface Timing {
  name: string;
  runs: number;
  minMs: number;
  medianMs: number;
  maxMs: number;
}

async function time(name: string, runs: number, command: string, args: string[], env?: NodeJS.ProcessEnv) {
  await exec(command, args, env); // warm-up: the file system cache, not counted
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) ms.push(await exec(command, args, env));
  ms.sort((a, b) => a - b);
  const median = runs % 2 ? ms[(runs - 1) / 2]! : (ms[runs / 2 - 1]! + ms[runs / 2]!) / 2;
  return { name, runs, minMs: Math.round(ms[0]!), medianMs: Math.round(median), maxMs: Math.round(ms.at(-1)!) };
}

export async function measureCli(runs = 10): Promise<Timing[]> {
  for (const name of ['@serverless-jobs/client', '@serverless-jobs/cli']) {
    await exec('npm', ['run', 'build', '--silent', '-w', name]);
  }
  const stack = await startLocalStack({ port: 0 });
  try {
    const env = { ...process.env, JOBS_ENDPOINT: stack.info.api, JOBS_CONFIG: join(pkg, 'no-profile.json') };
    const reply = await fetch(`${stack.info.api}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'bench-cli', tasks: [{ processor: 'demo.echo', input: { n: 1 } }] }),
    });
    const { id } = (await reply.json()) as { id: string };
    // A stack that has served a while, as `npm start` has: its handlers loaded and their code optimised.
    for (let i = 0; i < 50; i++) await (await fetch(`${stack.info.api}/v1/jobs/${id}`)).arrayBuffer();
    return [
      await time('node -e 0', runs, process.execPath, ['-e', '0']),
      await time('jobs --version', runs, process.execPath, [cli, '--version'], env),
      await time('jobs get ID', runs, process.execPath, [cli, 'get', id], env),
      await time('jobs get ID --json', runs, process.execPath, [cli, 'get', id, '--json'], env),
    ];
  } finally {
    await stack.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
  const timings = await measureCli(Number(process.argv[2] ?? 10));
  for (const t of timings) {
    console.log(`${t.name.padEnd(20)} median ${t.medianMs} ms (min ${t.minMs}, max ${t.maxMs}, ${t.runs} runs)`);
  }
}
