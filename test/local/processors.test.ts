import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close, listen } from '../../local/net.js';
import { localProcessors } from '../../local/processors.js';
import { type LocalStack, startLocalStack } from '../../local/stack.js';
import { apiClient } from '../support/api.js';

const SECRET = 'local-hook-secret';
let dir: string;

/** A user's project: a handler module as it would be deployed, in a folder of its own. */
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobs-user-'));
  writeFileSync(
    join(dir, 'render.ts'),
    `export const handler = async (event: { task: { input: { invoice: string } } }, context: { functionName: string }) =>
  ({ status: 'ok', result: { pdf: event.task.input.invoice + '.pdf', by: context.functionName } });
export const lines = async (event: { chunk: { rows: { line: number; input: unknown }[] } }) =>
  ({ rows: event.chunk.rows.map(({ line, input }) => ({ line, status: 'ok', result: { rendered: input } })) });
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm start with your own processors', () => {
  let stack: LocalStack;
  let hooks: Server;
  const received: { body: string; signed: boolean }[] = [];

  beforeAll(async () => {
    hooks = createServer((request, response) => {
      let body = '';
      request.on('data', (d) => (body += d));
      request.on('end', () => {
        const timestamp = String(request.headers['x-jobs-timestamp']);
        const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${body}`).digest('hex')}`;
        received.push({ body, signed: request.headers['x-jobs-signature'] === expected });
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"notified":true}');
      });
    });
    const hookPort = await listen(hooks, 0);
    writeFileSync(
      join(dir, 'processors.json'),
      JSON.stringify({
        'invoice.render': {
          target: { type: 'lambda', functionName: 'invoice-render' },
          kind: 'tasks',
          timeoutSeconds: 20,
        },
        'invoice.lines': {
          target: { type: 'lambda', functionName: 'invoice-lines' },
          kind: 'chunks',
          timeoutSeconds: 5,
        },
        'crm.notify': {
          target: {
            type: 'http',
            url: `http://127.0.0.1:${hookPort}/hooks/jobs`,
            secretEnv: 'CRM_SIGNING_SECRET',
            allowPrivateNetwork: true,
          },
          timeoutSeconds: 5,
        },
      }),
    );
    // As local/main.ts does: the options come from npm start's environment, paths from where it ran.
    const options = await localProcessors({
      PROCESSORS_FILE: 'processors.json',
      LOCAL_FUNCTIONS: JSON.stringify({
        'invoice-render': { module: './render.ts' },
        'invoice-lines': { module: './render.ts', export: 'lines' },
      }),
      DEMO_PROCESSORS: 'off',
      INIT_CWD: dir,
    });
    stack = await startLocalStack({ port: 0, ...options, handlerEnv: { CRM_SIGNING_SECRET: SECRET } });
  });
  afterAll(async () => {
    await stack?.stop();
    if (hooks) await close(hooks);
  });

  it('runs a job through a local module handler and an HTTP target', async () => {
    const job = await apiClient(stack).run({
      type: 'invoice',
      tasks: [
        { processor: 'invoice.render', input: { invoice: 'INV-7' } },
        { processor: 'crm.notify', input: { invoice: 'INV-7' } },
      ],
    });
    expect(job.status).toBe('SUCCEEDED');
    expect(job.tasks?.map((t) => t.result)).toEqual([{ pdf: 'INV-7.pdf', by: 'invoice-render' }, { notified: true }]);
    expect(received).toHaveLength(1);
    expect(received[0]?.signed).toBe(true);
    expect(JSON.parse(received[0]?.body ?? '{}').task.input).toEqual({ invoice: 'INV-7' });
  });

  it('runs a batch through a chunk processor of the same module', async () => {
    const job = await apiClient(stack).run({ type: 'lines', batch: { processor: 'invoice.lines', rows: ['a', 'b'] } });
    expect(job.status).toBe('SUCCEEDED');
    expect((job as unknown as { counts: unknown }).counts).toMatchObject({ total: 2, succeeded: 2 });
  });

  it('leaves the demos out with DEMO_PROCESSORS=off', async () => {
    const refused = await apiClient(stack).submit({ type: 't', tasks: [{ processor: 'demo.echo' }] });
    expect(refused.status).toBe(400);
    expect((refused.body as unknown as { error: { code: string } }).error.code).toBe('UNKNOWN_PROCESSOR');
    expect(stack.info.functions.filter((name) => name.includes('demo'))).toEqual([]);
    expect(stack.info.functions).toEqual(expect.arrayContaining(['invoice-render', 'invoice-lines']));
  });
});

describe('npm start refuses a bad processor configuration in one line', () => {
  const failure = async (env: NodeJS.ProcessEnv) =>
    localProcessors({ INIT_CWD: dir, ...env }).then(
      () => 'started',
      (error: Error) => error.message,
    );
  const lambda = (functionName: string) => ({ target: { type: 'lambda', functionName }, timeoutSeconds: 5 });

  it.each([
    [{ PROCESSORS: '{"a":' }, /^PROCESSORS: Processor configuration is not JSON/],
    [
      { PROCESSORS: JSON.stringify({ 'invoice.render': { target: { type: 'lambda' }, kind: 'rows' } }) },
      /^PROCESSORS: Processor configuration: invoice\.render\.target\.functionName: .*; invoice\.render\.kind: .*; invoice\.render\.timeoutSeconds: /,
    ],
    [
      { PROCESSORS: JSON.stringify({ slow: { ...lambda('f'), timeoutSeconds: 290 } }) },
      /^PROCESSORS: Processor slow: timeoutSeconds 290 \+ 15 s margin exceeds the worker's 300 s$/,
    ],
    [{ PROCESSORS: '{}', PROCESSORS_FILE: 'p.json' }, /^Give PROCESSORS or PROCESSORS_FILE, not both$/],
    [{ PROCESSORS_FILE: 'missing.json' }, /^PROCESSORS_FILE missing\.json: cannot read it \(ENOENT\)$/],
    [{ DEMO_PROCESSORS: 'no' }, /^DEMO_PROCESSORS must be on or off, not 'no'$/],
    [
      { LOCAL_FUNCTIONS: '{"f": {"path": "./render.ts"}}' },
      /^LOCAL_FUNCTIONS: f\.module: .*; f: Unrecognized key: "path"$/,
    ],
    [{ LOCAL_FUNCTIONS: '{"f": {"module": "./nowhere.ts"}}' }, /^LOCAL_FUNCTIONS f: no module \.\/nowhere\.ts in \//],
    [
      { LOCAL_FUNCTIONS: '{"f": {"module": "./render.ts", "export": "render"}}' },
      /^LOCAL_FUNCTIONS f: cannot load \.\/render\.ts: .*render\.ts exports no function 'render'$/,
    ],
  ])('%j', async (env, message) => {
    const error = await failure(env);
    expect(error).toMatch(message);
    expect(error).not.toContain('\n');
  });

  it('refuses a Lambda processor whose function nothing runs here, before starting anything', async () => {
    const options = await localProcessors({
      PROCESSORS: JSON.stringify({ 'invoice.render': lambda('invoice-render') }),
    });
    expect(options.demo).toBe(true);
    await expect(startLocalStack({ port: 0, ...options })).rejects.toThrow(
      /^Processor invoice\.render calls Lambda function invoice-render, which does not run here: map it to its handler module in LOCAL_FUNCTIONS$/,
    );
  });
});
