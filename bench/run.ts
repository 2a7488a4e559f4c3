import { execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { type LocalStack, startLocalStack } from '../local/stack.js';
import { measureClientSize } from '../packages/client/bench/size.js';
import { installMeter, Meter, uninstallMeter } from '../shared/aws/meter.js';
import { isTerminal, type JobStatus } from '../shared/core/model.js';
import { resources } from '../shared/resources.js';
import { type BatchBenchResult, batchBench } from './batch.js';
import { measureBundles } from './bundles.js';
import { kitBench } from './kit.js';
import { dollars, PRICES, stepFunctions } from './prices.js';
import { parseWindows, type Shape, summary, type TrafficResult, trafficBench } from './traffic.js';
import { percentile, systemUsage } from './usage.js';

/**
 * `npm run bench`: workloads on the embedded local stack with the request meter installed, priced
 * by bench/prices.ts. Costs exclude the caller's own send and the processor's own run, as the
 * targets in issue 9 do; the local event source's empty receives are reported apart (in AWS the
 * pollers long-poll: their idle cost is a monthly figure, see README).
 */
const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '10000' },
    rows: { type: 'string', default: '1000000' },
    /** `aws-local` runs DynamoDB Local and moto in their own processes: the Node process is then ours alone. */
    profile: { type: 'string', default: 'embedded' },
    /** trickle: jobs per second and for how many seconds (bench/traffic.ts). */
    rate: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '60' },
    /** burst and trickle: `declared`, `0`, or per queue `submit=1,work=0` (bench/traffic.ts). */
    'batching-window': { type: 'string', default: 'declared' },
    scenarios: {
      type: 'string',
      default:
        'queue,queue-nofind,payloads,payloads-find,http,http-nofind,latency,concurrent100,concurrent1000,sequential20,batch100,batch1000,bundles,kit,client',
    },
  },
});
const JOBS = Number(values.jobs);
const PROFILE = values.profile === 'aws-local' ? 'aws-local' : 'embedded';

process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';

interface Scenario {
  name: string;
  /** Extra handler environment, e.g. Find switched off. */
  env?: Record<string, string>;
  jobs: number;
  tasksPerJob: number;
  body: (i: number) => Record<string, unknown>;
  /**
   * `queue`: sent ten to a request as fast as they go; `http`: POSTed by 16 callers at once;
   * `http-wait`: 4 callers, each POSTs one job and long-polls it (`?wait=20`) until it ends, so the
   * latency is submit → terminal as a user waiting on one job sees it.
   */
  via: 'queue' | 'http' | 'http-wait';
}

const echoJob = (i: number) => ({ type: 'bench', tasks: [{ processor: 'demo.echo', input: { i } }] });
const hex = (n: number) =>
  randomBytes(Math.ceil(n / 2))
    .toString('hex')
    .slice(0, n);
/**
 * A real payload: an order of 12 line items of random ids and amounts, ~1,000 bytes of JSON and new
 * for every job (a repeated template would compress to nothing and flatter the encoding). demo.echo
 * answers it back, so the result is as large. `payloads` runs with Find off, `payloads-find` with it on.
 */
const orderJob = (i: number) => ({
  type: 'bench-order',
  tasks: [
    {
      processor: 'demo.echo',
      input: {
        order: `ord-${hex(12)}`,
        customer: `cus-${hex(10)}`,
        i,
        lines: Array.from({ length: 12 }, () => ({
          sku: hex(8),
          orderId: `${hex(8)}-${hex(4)}-${hex(4)}`,
          qty: 1 + Math.floor(Math.random() * 20),
          amount: Math.round(Math.random() * 1_000_000) / 100,
        })),
      },
    },
  ],
});
const all: Scenario[] = [
  { name: 'queue', jobs: JOBS, tasksPerJob: 1, body: echoJob, via: 'queue' },
  { name: 'queue-nofind', jobs: JOBS, tasksPerJob: 1, body: echoJob, via: 'queue', env: { SEARCH_INDEX: 'off' } },
  { name: 'payloads', jobs: JOBS, tasksPerJob: 1, body: orderJob, via: 'queue', env: { SEARCH_INDEX: 'off' } },
  { name: 'payloads-find', jobs: JOBS, tasksPerJob: 1, body: orderJob, via: 'queue' },
  { name: 'http', jobs: JOBS, tasksPerJob: 1, body: echoJob, via: 'http' },
  { name: 'http-nofind', jobs: JOBS, tasksPerJob: 1, body: echoJob, via: 'http', env: { SEARCH_INDEX: 'off' } },
  {
    name: 'concurrent100',
    jobs: 10,
    tasksPerJob: 100,
    via: 'http',
    body: (i) => ({
      type: 'bench-c',
      strategy: 'concurrent',
      tasks: Array.from({ length: 100 }, (_, t) => ({ processor: 'demo.echo', input: { i, t } })),
    }),
  },
  { name: 'latency', jobs: Math.min(JOBS, 500), tasksPerJob: 1, body: echoJob, via: 'http-wait' },
  {
    name: 'concurrent1000',
    jobs: 2,
    tasksPerJob: 1000,
    via: 'http',
    body: (i) => ({
      type: 'bench-c',
      strategy: 'concurrent',
      tasks: Array.from({ length: 1000 }, (_, t) => ({ processor: 'demo.echo', input: { i, t } })),
    }),
  },
  {
    name: 'sequential20',
    jobs: 10,
    tasksPerJob: 20,
    via: 'http',
    body: (i) => ({
      type: 'bench-s',
      tasks: Array.from({ length: 20 }, (_, t) => ({ processor: 'demo.echo', input: { i, t } })),
    }),
  },
];
const scenarios = all.filter((s) => values.scenarios.split(',').includes(s.name));

/** An unmetered view of the table, so watching the run costs it nothing. */
async function finished(stack: LocalStack, doc: DynamoDBDocumentClient): Promise<number> {
  let count = 0;
  let cursor: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({
        TableName: stack.info.tables.jobs,
        ProjectionExpression: '#s',
        ExpressionAttributeNames: { '#s': 'status' },
        ExclusiveStartKey: cursor,
      }),
    );
    count += (page.Items ?? []).filter((i) => isTerminal(i.status as JobStatus)).length;
    cursor = page.LastEvaluatedKey;
  } while (cursor);
  return count;
}

async function run(scenario: Scenario) {
  const stack = await startLocalStack({
    port: 0,
    profile: PROFILE,
    ...(scenario.env ? { handlerEnv: scenario.env } : {}),
  });
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  const sqs = new SQSClient({});
  const meter = new Meter();
  meter.indexes.set(stack.info.tables.jobs, resources.tables.jobs.indexes);
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 100);
  installMeter(meter);
  const started = performance.now();
  const latencies: number[] = [];
  try {
    if (scenario.via === 'queue') {
      const queueUrl = stack.info.queues.submit.url;
      for (let i = 0; i < scenario.jobs; i += 10) {
        const entries = Array.from({ length: Math.min(10, scenario.jobs - i) }, (_, j) => ({
          Id: String(j),
          MessageBody: JSON.stringify(scenario.body(i + j)),
        }));
        await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
      }
    } else if (scenario.via === 'http-wait') {
      let next = 0;
      const caller = async () => {
        while (next < scenario.jobs) {
          const i = next++;
          const t0 = performance.now();
          const submitted = await fetch(`${stack.info.api}/v1/jobs`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(scenario.body(i)),
          });
          const { id } = (await submitted.json()) as { id: string };
          if (submitted.status !== 202) throw new Error(`submit answered ${submitted.status}`);
          for (;;) {
            const read = await fetch(`${stack.info.api}/v1/jobs/${id}?wait=20`);
            const { status } = (await read.json()) as { status: string };
            if (['SUCCEEDED', 'FAILED', 'ABORTED'].includes(status)) break;
          }
          latencies.push(performance.now() - t0);
        }
      };
      await Promise.all(Array.from({ length: 4 }, caller));
    } else {
      let next = 0;
      const worker = async () => {
        while (next < scenario.jobs) {
          const i = next++;
          const t0 = performance.now();
          const response = await fetch(`${stack.info.api}/v1/jobs`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(scenario.body(i)),
          });
          await response.arrayBuffer();
          if (response.status !== 202) throw new Error(`submit answered ${response.status}`);
          latencies.push(performance.now() - t0);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
    }
    const submitted = performance.now();
    while ((await finished(stack, doc)) < scenario.jobs) await new Promise((r) => setTimeout(r, 500));
    const seconds = (performance.now() - started) / 1000;
    uninstallMeter();
    return {
      seconds,
      submitSeconds: (submitted - started) / 1000,
      latencies: latencies.sort((a, b) => a - b),
      meter,
      peakRss,
    };
  } finally {
    uninstallMeter();
    clearInterval(sampler);
    doc.destroy();
    sqs.destroy();
    await stack.stop();
  }
}

const perMillion = (value: number, units: number) => (value / units) * 1e6;
const results = [];
for (const scenario of scenarios) {
  process.stdout.write(`${scenario.name}: ${scenario.jobs} jobs × ${scenario.tasksPerJob} tasks… `);
  const outcome = await run(scenario);
  // The processors' runs are the user's code.
  const { billed: billedUsage, byOperation } = systemUsage(outcome.meter, (op) =>
    op.startsWith('Lambda.jobs-local-demo-'),
  );
  const onDemand = dollars(billedUsage, 'onDemand');
  const provisioned = dollars(billedUsage, 'provisioned');
  const tasks = scenario.jobs * scenario.tasksPerJob;
  const sfn = stepFunctions(scenario.tasksPerJob, 1, 1);
  const latency = outcome.latencies.length
    ? {
        p50: Number(percentile(outcome.latencies, 50).toFixed(1)),
        p99: Number(percentile(outcome.latencies, 99).toFixed(1)),
      }
    : null;
  const result = {
    scenario: scenario.name,
    profile: PROFILE,
    jobs: scenario.jobs,
    tasksPerJob: scenario.tasksPerJob,
    wallSeconds: Number(outcome.seconds.toFixed(2)),
    jobsPerSecond: Number((scenario.jobs / outcome.seconds).toFixed(1)),
    tasksPerSecond: Number((tasks / outcome.seconds).toFixed(1)),
    // http: the POST's answer; http-wait (latency): submit → terminal, as a caller waiting on it sees it.
    submitLatencyMs: scenario.via === 'http' ? latency : null,
    terminalLatencyMs: scenario.via === 'http-wait' ? latency : null,
    // Each miss is a worker that found its job not written yet and waited to look again (at most
    // one invocation per miss), so this is a floor on the invocations that never waited.
    workerInvocationsThatNeverWaited: (() => {
      const invocations = byOperation['Lambda.jobs-local-worker']?.lambdaInvocations ?? 0;
      const misses = byOperation['DynamoDB.GetItem']?.readMisses ?? 0;
      return invocations ? Number(Math.max(0, 1 - misses / invocations).toFixed(4)) : null;
    })(),
    peakRssMb: Math.round(outcome.peakRss / 1024 / 1024),
    perJob: Object.fromEntries(
      Object.entries(billedUsage).map(([k, v]) => [k, Number((v / scenario.jobs).toFixed(3))]),
    ),
    dollarsPerMillionTasks: {
      onDemand: Number(perMillion(onDemand.total, tasks).toFixed(3)),
      provisioned: Number(perMillion(provisioned.total, tasks).toFixed(3)),
    },
    dollarsPerMillionJobs: {
      onDemand: Number(perMillion(onDemand.total, scenario.jobs).toFixed(3)),
      provisioned: Number(perMillion(provisioned.total, scenario.jobs).toFixed(3)),
      anatomyOnDemand: Object.fromEntries(
        Object.entries(onDemand).map(([k, v]) => [k, Number(perMillion(v, scenario.jobs).toFixed(3))]),
      ),
      stepFunctionsStandard: Number((sfn.standard * 1e6).toFixed(2)),
      stepFunctionsExpress: Number((sfn.express * 1e6).toFixed(2)),
    },
    byOperationPerJob: Object.fromEntries(
      Object.entries(byOperation).map(([op, u]) => [
        op,
        Object.fromEntries(
          Object.entries(u)
            .filter(([, v]) => v)
            .map(([k, v]) => [k, Number((v / scenario.jobs).toFixed(3))]),
        ),
      ]),
    ),
  };
  results.push(result);
  console.log(
    `${result.wallSeconds} s, ${result.jobsPerSecond} jobs/s, $${result.dollarsPerMillionJobs.onDemand}/M jobs on demand ($${result.dollarsPerMillionTasks.onDemand}/M tasks), $${result.dollarsPerMillionJobs.provisioned}/M provisioned${result.terminalLatencyMs ? `, submit → terminal p50 ${result.terminalLatencyMs.p50} ms p99 ${result.terminalLatencyMs.p99} ms` : ''}`,
  );
}

const batches: BatchBenchResult[] = [];
for (const chunkSize of [100, 1000]) {
  if (!values.scenarios.split(',').includes(`batch${chunkSize}`)) continue;
  process.stdout.write(`batch${chunkSize}: ${values.rows} rows… `);
  const result = await batchBench(Number(values.rows), chunkSize, PROFILE);
  batches.push(result);
  console.log(
    `${result.wallSeconds} s, ${result.rowsPerSecond} rows/s, peak RSS ${result.peakRssMb} MB, $${result.dollarsPerMillionRows.onDemand}/M rows on demand, $${result.dollarsPerMillionRows.provisioned}/M provisioned (Distributed Map ≈ $${result.dollarsPerMillionRows.distributedMapExpress100})`,
  );
}

const traffic: TrafficResult[] = [];
for (const shape of ['burst', 'trickle'] as Shape[]) {
  if (!values.scenarios.split(',').includes(shape)) continue;
  process.stdout.write(`${shape}… `);
  const result = await trafficBench({
    shape,
    profile: PROFILE,
    jobs: JOBS,
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    windows: parseWindows(values['batching-window']),
  });
  traffic.push(result);
  console.log(summary(result));
}

const bundles = values.scenarios.split(',').includes('bundles') ? await measureBundles() : undefined;
if (bundles) {
  console.log('bundles (minified ESM as deployed; cold init = median import time in a fresh process):');
  console.table(bundles);
}

const client = values.scenarios.split(',').includes('client') ? await measureClientSize() : undefined;
if (client) {
  console.log(
    'client (@serverless-jobs/client for a browser, bytes minified + gzipped; sigv4 and validate load on first use):',
  );
  console.table(client);
}
const kit = values.scenarios.split(',').includes('kit') ? await kitBench() : undefined;
if (kit) {
  console.log(
    'processor kit: a tiny Lambda by hand and with the kit (minified ESM as deployed; kitBytes = what the kit adds):',
  );
  console.table(kit.bundles);
  console.log('processor kit: overhead beyond the user function (µs, mean of 20,000 calls):');
  console.table(kit.overhead);
}

const commit = execSync('git rev-parse --short HEAD').toString().trim();
const date = new Date().toISOString();
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `${date.slice(0, 16).replace(/:/g, '')}-${commit}-${PROFILE}.json`);
writeFileSync(
  file,
  `${JSON.stringify({ commit, date, profile: PROFILE, node: process.version, prices: PRICES, results, batches, traffic, bundles, kit, client }, null, 2)}\n`,
);
console.log(`results → ${file.slice(join(import.meta.dirname, '..').length + 1)}`);
