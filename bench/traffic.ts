import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { functionName, type LocalStack, startLocalStack } from '../local/stack.js';
import { installMeter, Meter, uninstallMeter } from '../shared/aws/meter.js';
import { isTerminal, type JobStatus } from '../shared/core/model.js';
import { type EventSourceQueue, type FunctionKey, resources } from '../shared/resources.js';
import { dollars } from './prices.js';
import { percentile, systemUsage } from './usage.js';

/**
 * Traffic shapes (issue 19): the same single-task demo.echo job, sent through the submit queue
 * either all at once (`burst`: N jobs, 16 senders of ten-message batches) or at a steady trickle
 * (`trickle`: one SendMessage every 1/rate s for a while). What the shape changes is how full the
 * event sources' batches are, so this reports, per function, the Lambda invocations and GB-s per
 * job and the messages per invocation, beside the price per million jobs and the submit →
 * terminal latency (each job's `endedAt` against the moment its message was sent).
 */

export type Shape = 'burst' | 'trickle';

export interface TrafficOptions {
  shape: Shape;
  profile: 'embedded' | 'aws-local';
  /** burst: how many jobs. */
  jobs?: number;
  /** trickle: jobs per second, and for how long. */
  rate?: number;
  seconds?: number;
  /** Batching windows instead of the declared ones (see parseWindows). */
  windows?: Partial<Record<EventSourceQueue, number>>;
}

/**
 * `--batching-window`: `declared` (shared/resources.ts), `0` (every source without a window, as
 * before windows existed), or per queue, `submit=1,work=0`.
 */
export function parseWindows(value: string): Partial<Record<EventSourceQueue, number>> | undefined {
  if (value === 'declared') return undefined;
  const queues = resources.eventSources.map((source) => source.queue as string);
  if (/^\d+$/.test(value)) return Object.fromEntries(queues.map((queue) => [queue, Number(value)]));
  const windows: Record<string, number> = {};
  for (const part of value.split(',')) {
    const [queue, seconds] = part.split('=');
    if (!queue || !queues.includes(queue) || !/^\d+$/.test(seconds ?? '')) {
      throw new Error(`--batching-window ${value}: 'declared', seconds, or queue=seconds for ${queues.join(', ')}`);
    }
    windows[queue] = Number(seconds);
  }
  return windows;
}

export interface FunctionFigures {
  invocationsPerJob: number;
  gbSecondsPerJob: number;
  /** Records handed to the function per invocation, as its event source counted them. */
  messagesPerInvocation: number;
}

export interface TrafficResult {
  scenario: Shape;
  profile: string;
  jobs: number;
  /** trickle only: the sending schedule. */
  rate: number | null;
  /** The windows the event sources ran with, by queue. */
  batchingWindowSeconds: Record<string, number>;
  sendSeconds: number;
  wallSeconds: number;
  jobsPerSecond: number;
  functions: Record<'worker' | 'submitConsumer', FunctionFigures>;
  perJob: Record<string, number>;
  dollarsPerMillionJobs: { onDemand: number; provisioned: number; anatomyOnDemand: Record<string, number> };
  /** From the send of a job's message to its `endedAt`. */
  terminalLatencyMs: { p50: number; p99: number; max: number };
  byOperationPerJob: Record<string, Record<string, number>>;
}

/** Long enough for 10,000 jobs on a loaded 2-core machine; a stuck run fails instead of hanging. */
const DRAIN_TIMEOUT_MS = 20 * 60_000;

const body = (i: number) => JSON.stringify({ type: 'bench', tasks: [{ processor: 'demo.echo', input: { i } }] });

/**
 * Ended jobs by their idempotency key, read through an unmetered client so watching costs the run
 * nothing. A queued job's key is its message id (no key was chosen), which the send answered with.
 */
async function endedJobs(stack: LocalStack, doc: DynamoDBDocumentClient): Promise<Map<string, number>> {
  const ended = new Map<string, number>();
  let cursor: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({
        TableName: stack.info.tables.jobs,
        ProjectionExpression: '#s, idempotencyKey, endedAt',
        ExpressionAttributeNames: { '#s': 'status' },
        ExclusiveStartKey: cursor,
      }),
    );
    for (const item of page.Items ?? []) {
      if (isTerminal(item.status as JobStatus) && typeof item.idempotencyKey === 'string' && item.endedAt) {
        ended.set(item.idempotencyKey, Date.parse(String(item.endedAt)));
      }
    }
    cursor = page.LastEvaluatedKey;
  } while (cursor);
  return ended;
}

/** Sends the burst: ten to a request, 16 requests in flight. Returns each message's send time. */
async function sendBurst(sqs: SQSClient, queueUrl: string, jobs: number): Promise<Map<string, number>> {
  const sent = new Map<string, number>();
  let next = 0;
  const sender = async () => {
    while (next < jobs) {
      const first = next;
      next += 10;
      const entries = Array.from({ length: Math.min(10, jobs - first) }, (_, j) => ({
        Id: String(j),
        MessageBody: body(first + j),
      }));
      const at = Date.now();
      const { Successful = [], Failed = [] } = await sqs.send(
        new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
      );
      if (Failed.length) throw new Error(`burst send refused ${Failed.length} messages: ${Failed[0]?.Message}`);
      for (const entry of Successful) sent.set(entry.MessageId as string, at);
    }
  };
  await Promise.all(Array.from({ length: 16 }, sender));
  return sent;
}

/**
 * Sends the trickle on a fixed schedule (job k at k/rate s), each message alone, without waiting
 * on a slow send before the next one is due.
 */
async function sendTrickle(
  sqs: SQSClient,
  queueUrl: string,
  rate: number,
  seconds: number,
): Promise<Map<string, number>> {
  const sent = new Map<string, number>();
  const jobs = Math.round(rate * seconds);
  const t0 = Date.now();
  const sends: Promise<void>[] = [];
  for (let k = 0; k < jobs; k++) {
    const due = t0 + (k * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sends.push(
      (async () => {
        const at = Date.now();
        const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body(k) }));
        sent.set(MessageId as string, at);
      })(),
    );
  }
  await Promise.all(sends);
  return sent;
}

export async function trafficBench(options: TrafficOptions): Promise<TrafficResult> {
  const { shape, profile } = options;
  const rate = options.rate ?? 2;
  const seconds = options.seconds ?? 60;
  const jobs = shape === 'burst' ? (options.jobs ?? 10_000) : Math.round(rate * seconds);
  const stack = await startLocalStack({
    port: 0,
    profile,
    ...(options.windows ? { batchingWindowSeconds: options.windows } : {}),
  });
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  const sqs = new SQSClient({});
  const meter = new Meter();
  meter.indexes.set(stack.info.tables.jobs, resources.tables.jobs.indexes);
  installMeter(meter);
  try {
    const started = Date.now();
    const queueUrl = stack.info.queues.submit.url;
    const sent =
      shape === 'burst' ? await sendBurst(sqs, queueUrl, jobs) : await sendTrickle(sqs, queueUrl, rate, seconds);
    const sendSeconds = (Date.now() - started) / 1000;
    let ended = new Map<string, number>();
    const until = Date.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      ended = await endedJobs(stack, doc);
      if (ended.size >= jobs) break;
      if (Date.now() > until) throw new Error(`${ended.size} of ${jobs} jobs ended within the drain timeout`);
      await new Promise((r) => setTimeout(r, shape === 'burst' ? 1000 : 250));
    }
    uninstallMeter();
    const last = Math.max(...ended.values());
    const latencies = [...sent].map(([id, at]) => {
      const end = ended.get(id);
      if (end === undefined) throw new Error(`message ${id} made no ended job`);
      return end - at;
    });
    latencies.sort((a, b) => a - b);

    // The system's own cost: without the processor's runs (the user's code) and the idle polls.
    const { byOperation, billed } = systemUsage(meter, (op) => op.startsWith('Lambda.jobs-local-demo-'));
    const onDemand = dollars(billed, 'onDemand');
    const provisioned = dollars(billed, 'provisioned');
    const perJob = (v: number, digits = 3) => Number((v / jobs).toFixed(digits));
    const perMillion = (v: number) => Number(((v / jobs) * 1e6).toFixed(3));

    const figures = (key: FunctionKey): FunctionFigures => {
      const name = functionName(stack.info.stage, key);
      const lambda = byOperation[`Lambda.${name}`];
      const source = stack.eventSources.find((s) => s.mapping.functionName === name);
      return {
        invocationsPerJob: perJob(lambda?.lambdaInvocations ?? 0),
        gbSecondsPerJob: perJob(lambda?.lambdaGbSeconds ?? 0, 5),
        messagesPerInvocation: source?.stats.invocations
          ? Number((source.stats.records / source.stats.invocations).toFixed(2))
          : 0,
      };
    };
    return {
      scenario: shape,
      profile,
      jobs,
      rate: shape === 'trickle' ? rate : null,
      batchingWindowSeconds: Object.fromEntries(
        resources.eventSources.map((source, i) => [
          source.queue,
          stack.eventSources[i]?.mapping.maximumBatchingWindowSeconds ?? 0,
        ]),
      ),
      sendSeconds: Number(sendSeconds.toFixed(2)),
      wallSeconds: Number(((last - started) / 1000).toFixed(2)),
      jobsPerSecond: Number((jobs / ((last - started) / 1000)).toFixed(1)),
      functions: { worker: figures('worker'), submitConsumer: figures('submitConsumer') },
      perJob: Object.fromEntries(Object.entries(billed).map(([k, v]) => [k, perJob(v)])),
      dollarsPerMillionJobs: {
        onDemand: perMillion(onDemand.total),
        provisioned: perMillion(provisioned.total),
        anatomyOnDemand: Object.fromEntries(Object.entries(onDemand).map(([k, v]) => [k, perMillion(v)])),
      },
      terminalLatencyMs: {
        p50: Math.round(percentile(latencies, 50)),
        p99: Math.round(percentile(latencies, 99)),
        max: Math.round(latencies.at(-1) ?? 0),
      },
      byOperationPerJob: Object.fromEntries(
        Object.entries(byOperation).map(([op, u]) => [
          op,
          Object.fromEntries(
            Object.entries(u)
              .filter(([, v]) => v)
              .map(([k, v]) => [k, perJob(v)]),
          ),
        ]),
      ),
    };
  } finally {
    uninstallMeter();
    doc.destroy();
    sqs.destroy();
    await stack.stop();
  }
}

/** One line per run for the console. */
export function summary(result: TrafficResult): string {
  const { worker, submitConsumer } = result.functions;
  const fn = (name: string, f: FunctionFigures) =>
    `${name} ${f.invocationsPerJob} inv/job, ${f.gbSecondsPerJob} GB-s/job, ${f.messagesPerInvocation} msgs/inv`;
  const windows = Object.entries(result.batchingWindowSeconds)
    .map(([queue, seconds]) => `${queue} ${seconds} s`)
    .join(', ');
  return [
    `windows ${windows}`,
    `${result.wallSeconds} s (sent in ${result.sendSeconds} s), ${result.jobsPerSecond} jobs/s`,
    fn('worker', worker),
    fn('submitConsumer', submitConsumer),
    `SQS ${result.perJob.sqsRequests} req/job`,
    `$${result.dollarsPerMillionJobs.onDemand}/M jobs on demand ($${result.dollarsPerMillionJobs.provisioned} provisioned)`,
    `submit → terminal p50 ${result.terminalLatencyMs.p50} ms p99 ${result.terminalLatencyMs.p99} ms`,
  ].join('; ');
}
