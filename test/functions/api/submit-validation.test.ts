import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { apiClient, queueDepth, tableItems } from '../../support/api.js';
import { startTestStack } from '../../support/stack.js';

let stack: LocalStack;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  // No pollers: whatever a refused request might have sent would stay on the queue to be seen.
  stack = await startTestStack({ startPollers: false });
  api = apiClient(stack);
});
afterAll(() => stack?.stop());

const task = { processor: 'demo.echo', input: 1 };

/** Each case: the body, the status and code expected, and a path the details must name. */
const cases: [string, unknown, number, string, string?][] = [
  ['missing type', { tasks: [task] }, 400, 'VALIDATION_FAILED', 'type'],
  ['type with a space', { type: 'a b', tasks: [task] }, 400, 'VALIDATION_FAILED', 'type'],
  ['type too long', { type: 'x'.repeat(129), tasks: [task] }, 400, 'VALIDATION_FAILED', 'type'],
  ['unknown top-level field', { type: 't', tasks: [task], priority: 1 }, 400, 'VALIDATION_FAILED'],
  ['unknown task field', { type: 't', tasks: [{ ...task, retries: 3 }] }, 400, 'VALIDATION_FAILED', 'tasks[0]'],
  ['tasks not an array', { type: 't', tasks: { 0: task } }, 400, 'VALIDATION_FAILED', 'tasks'],
  ['empty tasks', { type: 't', tasks: [] }, 400, 'VALIDATION_FAILED', 'tasks'],
  ['1001 tasks', { type: 't', tasks: Array.from({ length: 1001 }, () => task) }, 400, 'VALIDATION_FAILED', 'tasks'],
  [
    'processor of the wrong type',
    { type: 't', tasks: [{ processor: 7 }] },
    400,
    'VALIDATION_FAILED',
    'tasks[0].processor',
  ],
  ['bad strategy', { type: 't', strategy: 'parallel', tasks: [task] }, 400, 'VALIDATION_FAILED', 'strategy'],
  ['failFast on a sequential job', { type: 't', failFast: true, tasks: [task] }, 400, 'VALIDATION_FAILED', 'failFast'],
  ['meta not an object', { type: 't', meta: [1], tasks: [task] }, 400, 'VALIDATION_FAILED', 'meta'],
  ['meta over 8 KiB', { type: 't', meta: { pad: 'x'.repeat(8200) }, tasks: [task] }, 400, 'VALIDATION_FAILED', 'meta'],
  ['name over 256', { type: 't', name: 'n'.repeat(257), tasks: [task] }, 400, 'VALIDATION_FAILED', 'name'],
  [
    'idempotency key over 256',
    { type: 't', idempotencyKey: 'k'.repeat(257), tasks: [task] },
    400,
    'VALIDATION_FAILED',
    'idempotencyKey',
  ],
  [
    'both tasks and batch',
    { type: 't', tasks: [task], batch: { processor: 'demo.rows', rows: [] } },
    400,
    'VALIDATION_FAILED',
    'batch',
  ],
  ['a JSON array', [task], 400, 'VALIDATION_FAILED'],
  ['JSON null', null, 400, 'VALIDATION_FAILED'],
  [
    'unknown processor',
    { type: 't', tasks: [task, { processor: 'no.such' }] },
    400,
    'UNKNOWN_PROCESSOR',
    'tasks[1].processor',
  ],
];

/** `depth` arrays inside each other, as text: the test must not recurse to build or send it. */
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

/** Each case: the body text with a free-form value nested `depth` deep, and the path that names it. */
const deep: [string, (depth: number) => string, string][] = [
  ['task input', (d) => `{"type":"t","tasks":[{"processor":"demo.echo","input":${nested(d)}}]}`, 'tasks[0].input'],
  ['meta', (d) => `{"type":"t","meta":{"a":${nested(d - 1)}},"tasks":[${JSON.stringify(task)}]}`, 'meta'],
  ['a batch row', (d) => `{"type":"t","batch":{"processor":"demo.rows","rows":[1,${nested(d)}]}}`, 'batch.rows[1]'],
  [
    'batch context',
    (d) => `{"type":"t","batch":{"processor":"demo.rows","rows":[1],"context":{"a":${nested(d - 1)}}}}`,
    'batch.context',
  ],
];
const depths = [65, 2500, 100_000];

describe('POST /v1/jobs refuses bad input and writes nothing', () => {
  it.each(deep.flatMap(([what, body, path]) => depths.map((depth) => [what, depth, body(depth), path] as const)))(
    '%s nested %i deep',
    async (_what, _depth, body, path) => {
      const reply = await api.call<{ error: { code: string; details?: { path: string; message: string }[] } }>(
        'POST',
        '/v1/jobs',
        body,
      );
      expect(reply.status).toBe(400);
      expect(reply.body.error.code).toBe('VALIDATION_FAILED');
      expect(reply.body.error.details).toContainEqual({ path, message: 'must nest at most 64 levels deep' });
    },
  );

  it.each(cases)('%s', async (_name, body, status, code, path) => {
    const reply = await api.call<{ error: { code: string; details?: { path: string }[] } }>(
      'POST',
      '/v1/jobs',
      JSON.stringify(body),
    );
    expect(reply.status).toBe(status);
    expect(reply.body.error.code).toBe(code);
    if (path) expect(reply.body.error.details?.map((d) => d.path)).toContain(path);
  });

  it('refuses non-JSON, invalid UTF-8, a wrong media type and an oversized body', async () => {
    const post = (body: BodyInit, type = 'application/json') =>
      fetch(`${stack.info.api}/v1/jobs`, { method: 'POST', headers: { 'content-type': type }, body });
    expect((await post('{"type":"t", tasks: []}')).status).toBe(400);
    expect((await post(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))).status).toBe(400);
    expect((await post('{}', 'text/plain')).status).toBe(415);
    expect(
      (await post(JSON.stringify({ type: 't', tasks: [{ processor: 'demo.echo', input: 'x'.repeat(1_100_000) }] })))
        .status,
    ).toBe(413);
  });

  it('refuses an Idempotency-Key header that disagrees with the body field, and unknown query parameters', async () => {
    const mismatch = await api.submit({ type: 't', idempotencyKey: 'a', tasks: [task] }, { 'Idempotency-Key': 'b' });
    expect(mismatch.status).toBe(400);
    const query = await api.call('POST', '/v1/jobs?debug=1', { type: 't', tasks: [task] });
    expect(query.status).toBe(400);
    const wait = await api.call('GET', '/v1/jobs/x?wait=21');
    expect(wait.status).toBe(400);
  });

  it('refuses a processor of the other kind, naming the kind it takes', async () => {
    type Refusal = { error: { code: string; message: string; details?: { path: string; message: string }[] } };
    // demo.rows takes chunks of batch rows; as a task it would crash on every attempt.
    const asTask = await api.call<Refusal>('POST', '/v1/jobs', {
      type: 't',
      tasks: [task, task, { processor: 'demo.rows', input: 1 }],
    });
    expect(asTask.status).toBe(400);
    expect(asTask.body.error.code).toBe('UNKNOWN_PROCESSOR');
    expect(asTask.body.error.details).toEqual([
      { path: 'tasks[2].processor', message: "'demo.rows' takes chunks of batch rows, not tasks" },
    ]);
    // demo.echo takes tasks; as a batch processor every row would fail.
    const asBatch = await api.call<Refusal>('POST', '/v1/jobs', {
      type: 't',
      batch: { processor: 'demo.echo', rows: [1, 2] },
    });
    expect(asBatch.status).toBe(400);
    expect(asBatch.body.error.code).toBe('UNKNOWN_PROCESSOR');
    expect(asBatch.body.error.details).toEqual([
      { path: 'batch.processor', message: "'demo.echo' takes tasks, not chunks of batch rows" },
    ]);
  });

  it('left no job, task or message behind', async () => {
    expect(await tableItems(stack)).toEqual([]);
    expect(await queueDepth(stack, 'work')).toBe(0);
  });

  it('accepts a valid job after all that (the server is still up)', async () => {
    const reply = await api.submit({ type: 't', tasks: [task] });
    expect(reply.status).toBe(202);
    expect(await tableItems(stack)).toHaveLength(1);
    expect(await queueDepth(stack, 'work')).toBe(1);
  });
});

describe('free-form values nested up to 64 deep', () => {
  it('are accepted in every place the deeper ones were refused', async () => {
    for (const [what, body] of deep) {
      const reply = await api.call('POST', '/v1/jobs', body(64));
      expect(reply.status, what).toBe(202);
    }
  });

  it('and appended rows are held to the same depth', async () => {
    const held = await api.submit({ type: 't', batch: { processor: 'demo.rows', hold: true } });
    expect(held.status).toBe(202);
    const append = (rows: string) =>
      api.call<{ error?: { details?: unknown[] } }>('POST', `/v1/jobs/${held.body.id}/rows`, `{"rows":${rows}}`);
    for (const depth of depths) {
      const refused = await append(`[1,${nested(depth)}]`);
      expect(refused.status).toBe(400);
      expect(refused.body.error?.details).toContainEqual({
        path: 'rows[1]',
        message: 'must nest at most 64 levels deep',
      });
    }
    expect((await append(`[${nested(64)}]`)).status).toBe(200);
  });
});
