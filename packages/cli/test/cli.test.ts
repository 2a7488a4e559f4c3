import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { startTestStack } from '../../../test/support/stack.js';
import { buildOnce, hasScript, jobs, jsonLines, type RunOptions, STACK_FRAME } from './support.js';

/**
 * The built `jobs` command as a user runs it, a child process against the local stack
 * (LOCAL_AUTH=none): exit codes, what it prints for people and for scripts, and its errors.
 */
let stack: LocalStack;
let dir: string;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  [stack] = await Promise.all([startTestStack(), buildOnce()]);
  dir = mkdtempSync(join(tmpdir(), 'jobs-cli-'));
  // No profile file of the machine's user: JOBS_CONFIG points at one that does not exist.
  env = { JOBS_ENDPOINT: stack.info.api, JOBS_OWNER: 'alice', JOBS_CONFIG: join(dir, 'none.json') };
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const run = (args: string[], options: RunOptions = {}) => jobs(args, { ...options, env: { ...env, ...options.env } });
const json = async (args: string[], options: RunOptions = {}) => {
  const result = await run([...args, '--json'], options);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown> & { id: string; status: string };
};
const unique = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
const ESC = '\u001b[';

describe('jobs of tasks', () => {
  it('submits from flags, gets it, and watches it to exit 0 when it succeeds', async () => {
    const job = await json(['submit', '--type', 'greet', '--processor', 'demo.echo', '--input', '{"hello":"world"}']);
    expect(job).toMatchObject({ type: 'greet', kind: 'tasks', tasks: [{ processor: 'demo.echo' }] });
    const watched = await run(['watch', job.id]);
    expect(watched.code).toBe(0);
    // Piped: plain lines, the job at the end with its task's result; no escape sequences.
    expect(watched.stdout).toContain('status: SUCCEEDED 100%, 1/1 task done');
    expect(watched.stdout).toContain('{"echo":{"hello":"world"}}');
    expect(watched.stdout).not.toContain(ESC);
    const got = await json(['get', job.id]);
    expect(got).toMatchObject({ id: job.id, status: 'SUCCEEDED', tasks: [{ result: { echo: { hello: 'world' } } }] });
  });

  it('submits a body from a file and from stdin', async () => {
    const file = join(dir, 'job.json');
    writeFileSync(file, JSON.stringify({ type: 'from-file', tasks: [{ processor: 'demo.echo', input: 1 }] }));
    expect(await json(['submit', file])).toMatchObject({ type: 'from-file' });
    const body = JSON.stringify({ type: 'from-stdin', tasks: [{ processor: 'demo.echo' }] });
    expect(await json(['submit'], { input: body })).toMatchObject({ type: 'from-stdin' });
    expect(await json(['submit', '-'], { input: body })).toMatchObject({ type: 'from-stdin' });
  });

  it('exits 10 when the watched job fails, naming the task error', async () => {
    const result = await run(['submit', '--type', 'doomed', '--processor', 'demo.fail', '--watch']);
    expect(result.code).toBe(10);
    expect(result.stdout).toContain('status: FAILED');
    expect(result.stdout).toContain('DEMO_FAIL');
  });

  it('aborts a running job, whose watch then exits 11; an abort of a finished one is refused with 3', async () => {
    const job = await json(['submit', '--type', 'long', '--processor', 'demo.sleep', '--input', '{"ms":30000}']);
    expect((await json(['abort', job.id])).status).toBe('ABORTED');
    expect((await run(['watch', job.id])).code).toBe(11);
    const again = await run(['submit', '--type', 'quick', '--processor', 'demo.echo', '--watch', '--json']);
    const [first] = jsonLines(again.stdout);
    const refused = await run(['abort', String(first!.id)]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^error: INVALID_STATE: /);
  });

  it('stops watching at Ctrl-C with exit 130, leaving the job running', async () => {
    const job = await json(['submit', '--type', 'left', '--processor', 'demo.sleep', '--input', '{"ms":20000}']);
    const result = await run(['watch', job.id], {
      onStdout: (text, child) => {
        if (text.includes(job.id)) child.kill('SIGINT');
      },
    });
    expect(result.code).toBe(130);
    expect(result.stderr).toBe(`error: INTERRUPTED: stopped watching; job ${job.id} goes on (jobs watch ${job.id})\n`);
    expect((await json(['get', job.id])).status).not.toMatch(/SUCCEEDED|FAILED|ABORTED/);
    await run(['abort', job.id]);
  });

  it('writes JSON Lines while it watches with --json: each new state, the settled one last', async () => {
    const result = await run(['submit', '--type', 'lines', '--processor', 'demo.sleep', '--input', '{"ms":1500}']);
    expect(result.code).toBe(0);
    const id = /^id: (\S+)$/m.exec(result.stdout)![1]!;
    const watched = await run(['watch', id, '--json']);
    expect(watched.code).toBe(0);
    const views = jsonLines(watched.stdout);
    expect(views.length).toBeGreaterThanOrEqual(2);
    expect(views.every((view) => view.id === id)).toBe(true);
    expect(views.at(-1)).toMatchObject({ status: 'SUCCEEDED' });
    expect(new Set(views.map((view) => JSON.stringify(view))).size).toBe(views.length);
  });
});

describe('lists', () => {
  it('finds jobs by type, status and meta, to a limit; tab-separated when piped, JSON Lines with --json', async () => {
    const type = unique('listed');
    const ids: string[] = [];
    for (const team of ['ops', 'ops', 'web']) {
      const job = await json(['submit', '--type', type, '--processor', 'demo.echo', '--meta', `team=${team}`]);
      ids.push(job.id);
    }
    const ops = jsonLines((await run(['ls', '--type', type, '--meta', 'team=ops', '--json'])).stdout);
    expect(ops.map((job) => job.id).sort()).toEqual([ids[0], ids[1]].sort());
    const one = await run(['ls', '--type', type, '--limit', '1', '--order', 'asc', '--json']);
    expect(jsonLines(one.stdout).map((job) => job.id)).toEqual([ids[0]]);
    const piped = await run(['ls', '--type', type, '--meta', 'meta.team=web']);
    expect(piped.code).toBe(0);
    expect(piped.stdout.trim().split('\t').slice(0, 3)).toEqual([ids[2], type, 'tasks']);
    const none = await run(['ls', '--type', type, '--status', 'FAILED']);
    expect(none).toMatchObject({ code: 0, stdout: '' });
  });

  it('finds tasks by job type and status', async () => {
    const type = unique('task-search');
    await run(['submit', '--type', type, '--processor', 'demo.fail', '--watch']);
    const failed = jsonLines((await run(['tasks', '--job-type', type, '--status', 'FAILED', '--json'])).stdout);
    expect(failed).toMatchObject([{ jobType: type, processor: 'demo.fail', status: 'FAILED' }]);
    const table = await run(['tasks', '--job-type', type]);
    expect(table.stdout).toContain('DEMO_FAIL');
  });

  it("prints a job's events, and follows them until the job ends", async () => {
    const job = await json(['submit', '--type', 'followed', '--processor', 'demo.sleep', '--input', '{"ms":1500}']);
    const followed = await run(['events', job.id, '--follow', '--json']);
    expect(followed.code).toBe(0);
    const types = jsonLines(followed.stdout).map((event) => event.type);
    expect(types[0]).toBe('job.submitted');
    expect(types).toContain('task.succeeded');
    const plain = await run(['events', job.id]);
    expect(plain.stdout.split('\n')[0]).toMatch(/^\S+Z {2}info {3}job\.submitted {7}\S/);
  });
});

describe('batches', () => {
  it('runs a CSV file end to end: submit, upload, release, watch; then rows and downloads', async () => {
    const file = join(dir, 'people.csv');
    const people = Array.from({ length: 120 }, (_, i) => `${i + 1},person ${i + 1}`);
    writeFileSync(file, `n,name\n${people.join('\n')}\n`);
    const result = await run(['batch', file, '--processor', 'demo.rows', '--chunk-size', '25', '--type', 'people']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^submitted \S+\nuploaded \d+ bytes, released \S+\n/);
    expect(result.stdout).toContain('status: SUCCEEDED 100%, 120/120 rows done');
    expect(result.stdout).toContain('chunks: 5/5');
    const id = /^id: (\S+)$/m.exec(result.stdout)![1]!;

    const rows = jsonLines((await run(['rows', id, '--status', 'SUCCEEDED'])).stdout);
    expect(rows).toHaveLength(120);
    expect(rows[0]).toMatchObject({ line: 1, status: 'SUCCEEDED', result: { echo: { n: '1', name: 'person 1' } } });

    const results = await run(['download', id]);
    expect(jsonLines(results.stdout).map((row) => row.line)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    const out = join(dir, 'echo.txt');
    const saved = await json(['download', id, 'echo', '-o', out]);
    expect(saved).toMatchObject({ id, output: 'echo', file: out, lines: 120 });
    expect(jsonLines(readFileSync(out, 'utf8'))[119]).toEqual({ n: '120', name: 'person 120' });
    const missing = await run(['download', id, 'nope']);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain("no output 'nope' (outputs: results, errors, echo)");
  });

  it('exits 10 for a batch whose rows fail, whose failed rows `rows --status FAILED` lists', async () => {
    const file = join(dir, 'rows.jsonl');
    writeFileSync(file, `${[{ n: 1 }, { fail: true }, { n: 3 }].map((row) => JSON.stringify(row)).join('\n')}\n`);
    const result = await run(['batch', file, '--processor', 'demo.rows', '--json']);
    expect(result.code).toBe(10);
    const views = jsonLines(result.stdout);
    expect(views[0]).toMatchObject({ status: 'HELD', kind: 'batch' });
    expect(views.at(-1)).toMatchObject({ status: 'FAILED', error: { code: 'TOO_MANY_FAILED_ROWS' } });
    const failed = jsonLines((await run(['rows', String(views[0]!.id), '--status', 'FAILED'])).stdout);
    expect(failed).toMatchObject([{ line: 2, status: 'FAILED', error: { code: 'ROW_FAIL' } }]);
  });
});

describe('errors', () => {
  it('answers a mistyped command or option with a suggestion and the help, exit 2, no stack trace', async () => {
    const command = await run(['gte', 'x']);
    expect(command.code).toBe(2);
    expect(command.stderr).toContain("error: unknown command 'gte'");
    expect(command.stderr).toContain('(Did you mean get?)');
    expect(command.stderr).toContain('Usage: jobs [options] [command]');
    const option = await run(['ls', '--stauts', 'FAILED']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain('(Did you mean --status?)');
    expect(option.stderr).toContain('Usage: jobs ls [options]');
    const choice = await run(['ls', '--status', 'DONE']);
    expect(choice.code).toBe(2);
    expect(choice.stderr).toContain('Allowed choices are HELD, PENDING, RUNNING, SUCCEEDED, FAILED, ABORTED');
    for (const result of [command, option, choice]) {
      expect(result.stdout).toBe('');
      expect(result.stderr).not.toMatch(STACK_FRAME);
    }
  });

  it('prints a contract error as code: message and its details, exit 3; with --json its shape on stderr', async () => {
    const result = await run(['submit', '--type', 't', '--processor', 'no.such.processor']);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^error: UNKNOWN_PROCESSOR: .+\n {2}tasks\[0\]\.processor: .+no\.such\.processor/);
    expect(result.stderr).not.toMatch(STACK_FRAME);
    const scripted = await run(['submit', '--type', 't', '--processor', 'no.such.processor', '--json']);
    expect(scripted.code).toBe(3);
    expect(scripted.stdout).toBe('');
    expect(JSON.parse(scripted.stderr)).toMatchObject({
      error: { code: 'UNKNOWN_PROCESSOR', details: [{ path: 'tasks[0].processor' }] },
    });
    const invalid = await run(['ls', '--created-after', 'yesterday']);
    expect(invalid.code).toBe(3);
    expect(invalid.stderr).toContain('error: VALIDATION_FAILED: ');
    expect(invalid.stderr).toContain('  createdAfter: ');
  });

  it('exits 4 for an unknown job, 2 for a missing endpoint or bad body, 6 for an unreachable API', async () => {
    const missing = await run(['get', 'no-such-job']);
    expect(missing).toMatchObject({ code: 4, stdout: '' });
    expect(missing.stderr).toMatch(/^error: NOT_FOUND: /);

    const noEndpoint = await run(['get', 'x'], { env: { JOBS_ENDPOINT: undefined } });
    expect(noEndpoint.code).toBe(2);
    expect(noEndpoint.stderr).toMatch(/^error: no endpoint: pass --endpoint URL, set JOBS_ENDPOINT/);

    const badBody = await run(['submit'], { input: '{"type": ' });
    expect(badBody.code).toBe(2);
    expect(badBody.stderr).toMatch(/^error: stdin is not JSON/);

    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const down = await run(['get', 'x', '--endpoint', `http://127.0.0.1:${port}`]);
    expect(down.code).toBe(6);
    expect(down.stderr).toBe(`error: UNREACHABLE: no answer from http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });
});

describe('configuration', () => {
  it('takes endpoint and owner from a profile; flags and JOBS_* variables win over it', async () => {
    const config = join(dir, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        default: 'as-bob',
        profiles: {
          'as-bob': { endpoint: stack.info.api, owner: 'bob' },
          nowhere: { endpoint: 'http://127.0.0.1:9', auth: 'none' },
        },
      }),
    );
    const profileEnv = { JOBS_CONFIG: config, JOBS_ENDPOINT: undefined, JOBS_OWNER: undefined };
    const bobs = await json(['submit', '--type', 'bobs', '--processor', 'demo.echo'], { env: profileEnv });
    // The default profile's owner: bob sees the job, alice (a flag over the profile) does not.
    expect((await json(['get', bobs.id], { env: profileEnv })).id).toBe(bobs.id);
    expect((await run(['get', bobs.id, '--owner', 'alice'], { env: profileEnv })).code).toBe(4);
    expect((await run(['get', bobs.id, '--profile', 'nowhere'], { env: profileEnv })).code).toBe(6);
    const env = { ...profileEnv, JOBS_ENDPOINT: stack.info.api, JOBS_OWNER: 'bob' };
    expect((await run(['get', bobs.id, '--profile', 'nowhere'], { env })).code).toBe(0);
    const unknown = await run(['ls', '--profile', 'prod'], { env: profileEnv });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe(`error: no profile 'prod' in ${config} (profiles: as-bob, nowhere)\n`);
  });
});

describe.skipIf(!hasScript)('on a terminal (a pseudo-terminal from util-linux script)', () => {
  it('redraws the task table of a running job in place, then leaves the final one', async () => {
    const job = await json(['submit', '--type', 'drawn', '--processor', 'demo.sleep', '--input', '{"ms":2500}']);
    const result = await run(['watch', job.id], { tty: true, env: { NO_COLOR: '1' } });
    expect(result.code).toBe(0);
    const screen = result.stdout;
    // cli-table3's box and log-update's erase-line sequence between frames.
    expect(screen).toMatch(/│ # │ name │ processor +│ status +│ attempts │ result \/ error +│/);
    expect(screen).toContain(`${ESC}2K`);
    expect(screen).toContain('RUNNING');
    expect(screen).toMatch(/│ status +│ SUCCEEDED 100%, 1\/1 task done +│/);
  });

  it('draws upload and row progress bars for a batch', async () => {
    const file = join(dir, 'bar.csv');
    writeFileSync(file, `n\n${Array.from({ length: 200 }, (_, i) => i).join('\n')}\n`);
    const result = await run(['batch', file, '--processor', 'demo.rows', '--chunk-size', '20'], {
      tty: true,
      env: { NO_COLOR: '1' },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/upload █+ 100% \| \d+\/\d+ bytes/);
    expect(result.stdout).toMatch(/█+ 100% \| 200\/200 rows \| 0 failed \| chunks 10\/10 \| SUCCEEDED/);
  });

  it('writes nothing but JSON with --json, even on a terminal', async () => {
    const result = await run(['submit', '--type', 'quiet', '--processor', 'demo.echo', '--watch', '--json'], {
      tty: true,
    });
    expect(result.code).toBe(0);
    // The pseudo-terminal turns \n into \r\n.
    const views = jsonLines(result.stdout.replaceAll('\r\n', '\n'));
    expect(views.at(-1)).toMatchObject({ status: 'SUCCEEDED' });
  });
});
