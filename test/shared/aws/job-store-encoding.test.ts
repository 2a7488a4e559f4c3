import { randomBytes, randomUUID } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { clients } from '../../../shared/aws/clients.js';
import { DynamoJobIndex } from '../../../shared/aws/job-index.js';
import { DynamoJobStore, ITEM_BUDGET_BYTES } from '../../../shared/aws/job-store.js';
import { dynamoItemSize, installMeter, Meter, uninstallMeter } from '../../../shared/aws/meter.js';
import { S3PayloadStore } from '../../../shared/aws/payloads.js';
import { jobItemKey } from '../../../shared/core/keys.js';
import type { Job } from '../../../shared/core/model.js';
import { taskInput, type WorkQueue } from '../../../shared/core/ports.js';
import { ProcessorRegistry } from '../../../shared/core/processors.js';
import { createJob } from '../../../shared/core/tasks/transitions.js';
import { taskJobs } from '../../support/engines.js';
import { testProcessor } from '../../support/processors.js';
import { startTestStack } from '../../support/stack.js';

/** How job items are encoded: what a write costs, and that every form ever written still reads. */
let stack: LocalStack;
let store: DynamoJobStore;
let payloads: S3PayloadStore;
const run = randomUUID().slice(0, 8);

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
  payloads = new S3PayloadStore(clients().s3, stack.info.buckets.data);
  store = new DynamoJobStore(clients().doc, stack.info.tables.jobs, payloads, 30);
});
afterAll(() => stack?.stop());

const hex = (n: number) => randomBytes(n).toString('hex').slice(0, n);
/** An order of 12 line items of random ids and amounts: ~1 KB of JSON that compresses only so far. */
const order = () => ({
  order: `ord-${hex(12)}`,
  customer: `cus-${hex(10)}`,
  lines: Array.from({ length: 12 }, () => ({
    sku: hex(8),
    orderId: `${hex(8)}-${hex(4)}-${hex(4)}`,
    qty: 1 + Math.floor(Math.random() * 20),
    amount: Math.round(Math.random() * 1_000_000) / 100,
  })),
});

const rawItem = async (id: string) =>
  (await clients().doc.send(new GetCommand({ TableName: stack.info.tables.jobs, Key: jobItemKey(id) }))).Item;

describe('what a job with a real payload costs per write', () => {
  it('writes a single-task job with a random ~1 KB input and its ~1 KB result in one unit per write, Find on', async () => {
    const sent: unknown[] = [];
    const queue: WorkQueue = { send: async (messages) => void sent.push(...messages) };
    const engine = taskJobs({
      store,
      queue,
      payloads,
      // demo.echo's answer: the input back, so the result is as large.
      invoker: { invoke: async (_p, request) => ({ status: 'ok', result: { echo: request.task.input } }) },
      processors: new ProcessorRegistry([testProcessor('demo.echo', { timeoutSeconds: 10 })]),
      clock: { now: () => new Date() },
    });
    const meter = new Meter();
    installMeter(meter);
    try {
      for (let i = 0; i < 20; i++) {
        const input = order();
        expect(JSON.stringify(input).length).toBeGreaterThan(950);
        // As the submit queue makes it: an IAM owner and the message id for its key.
        const { job } = await engine.submit(
          { type: 'bench-order', tasks: [{ processor: 'demo.echo', input }] },
          'iam:AROA3XFRBF23EXAMPLEID',
          randomUUID(),
        );
        expect(await engine.runTask(sent.pop() as never, { messageId: randomUUID() })).toEqual({ kind: 'done' });
        const done = await store.get(job.id);
        expect(done?.status).toBe('SUCCEEDED');
        expect(done?.tasks[0]?.result).toEqual({ echo: input });
        expect(dynamoItemSize(await rawItem(job.id))).toBeLessThanOrEqual(1024);
      }
    } finally {
      uninstallMeter();
    }
    // Create and finish, each billed by DynamoDB itself (the larger of old and new item).
    expect(meter.byOperation()['DynamoDB.PutItem']).toMatchObject({ calls: 40, wru: 40 });
  });
});

describe('items written by earlier versions', () => {
  // As the encoding before the compact form wrote them (captured from it): a small job as plain
  // attributes, and a 12-task job with its task list brotli-compressed (`tasksZ`). Only expiresAt
  // was moved into the future, so the item is not past its retention whenever this runs.
  const plain = {
    id: 'legacy-plain',
    owner: 'iam:AROALEGACY',
    type: 'legacy',
    createdAt: '2026-11-30T10:00:00.000Z',
    updatedAt: '2026-11-30T10:00:00.000Z',
    requestHash: 'hash-plain',
    idempotencyKey: 'key-plain',
    version: 1,
    kind: 'tasks',
    strategy: 'sequential',
    failFast: false,
    status: 'PENDING',
    pk: 'JOB#legacy-plain',
    sk: 'JOB',
    meta: '{"order":"A-1"}',
    tasks: [
      {
        id: 'legacy-plain.0',
        index: 0,
        processor: 'demo.echo',
        status: 'QUEUED',
        attempts: 0,
        queuedAt: '2026-11-30T10:00:00.000Z',
        ticket: 'x2kcqxca8n',
        input: '{"n":1}',
      },
    ],
    sOwner: '1xHWDUwuEbfWtJHl9qJhan#14',
    sOrder: '2026-11-30T10:00:00.000Z#legacy-plain',
    writeId: '1f6cd080-badd-4071-8307-18b5082bfb66',
  };
  const compressed = {
    id: 'legacy-z',
    owner: 'iam:AROALEGACY',
    type: 'legacy',
    createdAt: '2026-11-30T10:00:00.000Z',
    updatedAt: '2026-11-30T10:00:00.000Z',
    requestHash: 'hash-z',
    version: 2,
    kind: 'tasks',
    strategy: 'concurrent',
    failFast: false,
    status: 'SUCCEEDED',
    startedAt: '2026-11-30T10:00:00.000Z',
    endedAt: '2026-11-30T10:00:00.000Z',
    pk: 'JOB#legacy-z',
    sk: 'JOB',
    sOwner: '1xHWDUwuEbfWtJHl9qJhan#0',
    sOrder: '2026-11-30T10:00:00.000Z#legacy-z',
    writeId: 'cbe1688b-e2db-47a2-a4cf-c1ebc53bc1ed',
    expiresAt: 4_102_444_800,
    tasksZ: Buffer.from(
      'G2ARAORyrpT9WZ12sgFyR0I9cZmP9v/SYhmTPC8XfwXHpgIf9pV6pTHzcp2DxxScoAWFIJ5joNraSNhD+hRkay2ndC2fV8gjcPDmfu/iUyAwSiM4SqD5r+MeXt7ED3ezKuV2KCWYHCU/7P8GAuP0P80jOHh8PhxOp+PpCATWWd8IDgkEZ020m8DB9PzkIXqcPiF19BT1K/QDCMRKKe73o7FL2qhsrIcR9hwmgbT5oo5pX76Cg+sXjOX8Be76hUe/gHxBP52pOiRfEOCROkfvQMC7zJOpr05uAWmcvcOdOA2QQDWIAbJgbSIRFkPPsbZozULsDsh86bdMiXUdMIKpYRigPCuxTfUiFp5RGm4MQ3wRrImE2AY4wfVwwqCWw6ZMHNS4jGupkTgI12EulGJ9B4IQagQGuCxCbnHQmQyXo9IKyUXIRVwkxHoOJCHVSIxwtipeMxwaQ7yVViK1GLWUC6VY34EilBqFAZphTGmf8DHCFVqiQHoRehcJsQfQhFajCYcsLfqiTuM4zl0pBefIxMRooRRbgCGMGoMBwjXgEtNS97iKc8mQPQTSxVymxLoOLGHVWAzwv/2vYyoCU+NqZBrXkRoW1G+5VIzPhXpTzklY9WA1SCCDTQedFXU61J849tdDIcuHBFK89RApVIMY4NJEYRIbni4kGI3UYhbQX7pYzLvD/Rs=',
      'base64',
    ),
  };
  const at = '2026-11-30T10:00:00.000Z';
  const tickets =
    'n9vgn6hsmr hbwnd4cjrq ky64xtmv4v km5rx68ebm zv45xebp8h y96ewh1rn8 nrsg0qf3sd hgjqjmgee8 cwb351gk7q axawsg4b8m b5bx7bp94m zndcfe83gv';
  const expectedCompressed: Job = {
    id: 'legacy-z',
    owner: 'iam:AROALEGACY',
    type: 'legacy',
    createdAt: at,
    updatedAt: at,
    requestHash: 'hash-z',
    version: 2,
    kind: 'tasks',
    strategy: 'concurrent',
    failFast: false,
    status: 'SUCCEEDED',
    startedAt: at,
    endedAt: at,
    tasks: tickets.split(' ').map((ticket, i) => {
      const input = { sku: `sku-${i * 7919}`, qty: i + 1, amount: 12.5 * i };
      return {
        id: `legacy-z.${i}`,
        index: i,
        name: `line ${i}`,
        processor: 'demo.echo',
        status: 'SUCCEEDED',
        attempts: 1,
        input,
        queuedAt: at,
        ticket,
        startedAt: at,
        endedAt: at,
        result: { echo: input },
      };
    }),
  };
  const expectedPlain: Job = {
    id: 'legacy-plain',
    owner: 'iam:AROALEGACY',
    type: 'legacy',
    meta: { order: 'A-1' },
    createdAt: at,
    updatedAt: at,
    requestHash: 'hash-plain',
    idempotencyKey: 'key-plain',
    version: 1,
    kind: 'tasks',
    strategy: 'sequential',
    failFast: false,
    status: 'PENDING',
    tasks: [
      {
        id: 'legacy-plain.0',
        index: 0,
        processor: 'demo.echo',
        status: 'QUEUED',
        attempts: 0,
        input: { n: 1 },
        queuedAt: at,
        ticket: 'x2kcqxca8n',
      },
    ],
  };

  beforeAll(async () => {
    for (const Item of [plain, compressed]) {
      await clients().doc.send(new PutCommand({ TableName: stack.info.tables.jobs, Item }));
    }
  });

  it('reads them as the jobs they were, by id, through Find’s load and as a refused create’s existing job', async () => {
    expect(await store.get('legacy-plain')).toEqual(expectedPlain);
    expect(await store.get('legacy-z')).toEqual(expectedCompressed);
    expect(await store.peek('legacy-z')).toEqual(expectedCompressed);
    const loaded = await new DynamoJobIndex(clients().doc, stack.info.tables.jobs).load(['legacy-plain', 'legacy-z']);
    expect(loaded.sort((a, b) => a.id.localeCompare(b.id))).toEqual([expectedPlain, expectedCompressed]);
    const replay = await store.create({ ...expectedPlain, requestHash: 'another' });
    expect(replay).toEqual({ created: false, existing: expectedPlain });
  });

  it('moves them on with a conditional write on their version, in today’s form', async () => {
    const next = { ...expectedCompressed, version: 3, name: 'renamed' };
    expect(await store.replace(next, 1)).toBe(false);
    expect(await store.replace(next, 2)).toBe(true);
    expect(await store.get('legacy-z')).toEqual(next);
    expect((await rawItem('legacy-z'))?.tasksZ).toBeUndefined();
  });
});

describe('the compact form', () => {
  const manyTasks = (id: string, inputs: unknown[]): Job =>
    createJob(
      {
        type: 'compact',
        strategy: 'concurrent',
        failFast: false,
        meta: { note: 'kept' },
        tasks: inputs.map((input) => ({ processor: 'p', input })),
      },
      { jobId: id, taskIds: inputs.map((_, i) => `${id}.${i}`) },
      new Date(),
      { owner: 'o', requestHash: `hash-${id}` },
    ).job;

  it('is found by the sweeper’s scan while unfinished, by Find’s index, and as a refused create’s existing job', async () => {
    const id = `compact-active-${run}`;
    const job = manyTasks(id, [order(), order()]);
    await store.create(job);
    const item = await rawItem(id);
    expect(item?.jobZ).toBeDefined();
    expect(item).toMatchObject({ type: 'compact', status: 'PENDING', createdAt: job.createdAt, version: 1 });
    const active: string[] = [];
    for await (const entry of store.activeJobs(new Date(Date.now() + 1000))) {
      if (entry.id === id) active.push(entry.kind);
    }
    expect(active).toEqual(['tasks']);
    expect(await new DynamoJobIndex(clients().doc, stack.info.tables.jobs).load([id])).toEqual([job]);
    expect(await store.create({ ...job, requestHash: 'another' })).toEqual({ created: false, existing: job });
  });

  it('keeps task ids that are not the job’s id and index (the document leaves out only those that are)', async () => {
    const id = `compact-ids-${run}`;
    const job = createJob(
      {
        type: 'compact',
        strategy: 'sequential',
        failFast: false,
        tasks: [order(), order()].map((input) => ({ processor: 'p', input })),
      },
      { jobId: id, taskIds: [`${id}.0`, 'made-elsewhere'] },
      new Date(),
      { owner: 'o', requestHash: `hash-${id}` },
    ).job;
    await store.create(job);
    expect((await rawItem(id))?.jobZ).toBeDefined();
    expect((await store.get(id))?.tasks.map((task) => task.id)).toEqual([`${id}.0`, 'made-elsewhere']);
  });

  it('keeps the item as written within budget: incompressible values beyond it move to S3, all read back', async () => {
    const id = `compact-budget-${run}`;
    // 7 × 60 KB of random text (each under the 64 KiB inline limit): 420 KB, past the budget.
    const inputs = Array.from({ length: 7 }, () => ({ blob: randomBytes(45_000).toString('base64') }));
    const job = manyTasks(id, inputs);
    expect(await store.create(job)).toEqual({ created: true });
    const item = await rawItem(id);
    expect(dynamoItemSize(item)).toBeLessThanOrEqual(ITEM_BUDGET_BYTES);
    const stored = await store.get(id);
    expect(stored?.tasks.some((task) => task.inputRef !== undefined)).toBe(true);
    expect(stored?.tasks.some((task) => task.inputRef === undefined)).toBe(true);
    for (const [i, task] of (stored?.tasks ?? []).entries()) {
      expect(await taskInput(payloads, id, task)).toEqual(inputs[i]);
    }
  });
});
