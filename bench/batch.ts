import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { type LocalStack, startLocalStack } from '../local/stack.js';
import { installMeter, Meter, uninstallMeter } from '../shared/aws/meter.js';
import { resources } from '../shared/resources.js';
import { dollars, PRICES } from './prices.js';
import { systemUsage } from './usage.js';

/**
 * Scenario (c) of issue 9: a batch of N rows (~100 bytes each) uploaded as one JSON Lines file
 * through the presigned URL, run by a no-op row processor, to the assembled outputs. Wall time,
 * rows/s, peak memory (the whole local stack is one process: API, worker, emulators), requests
 * and billed units per row by operation, dollars per million rows in both DynamoDB modes, and
 * the same rows on Step Functions Distributed Map with Express children.
 */

const NOOP = 'bench-noop-rows';

/** A row processor that does nothing: every row ok, no result. */
const noop = async (event: { chunk: { rows: { line: number }[] } }) => ({
  rows: event.chunk.rows.map(({ line }) => ({ line, status: 'ok' })),
});

function* lines(rows: number): Generator<string> {
  // ~100 bytes per row, like a bank transaction line.
  const pad = 'x'.repeat(40);
  let buffer = '';
  for (let i = 1; i <= rows; i++) {
    buffer += `{"n":${i},"account":"DE89370400440532013000","amount":${(i % 9973) / 100},"m":"${pad}"}\n`;
    if (buffer.length > 1 << 20) {
      yield buffer;
      buffer = '';
    }
  }
  if (buffer) yield buffer;
}

/**
 * Distributed Map (Standard parent) with Express children, `batch` items per child: each child
 * start is a parent transition, plus the child's Express request and duration (64 MB, 1 s), and
 * the Lambda invocation that does the child's work.
 */
export function distributedMap(rows: number, batch = 100, childSeconds = 1): number {
  const children = Math.ceil(rows / batch);
  return (
    children *
    (PRICES.sfnStandardTransition +
      PRICES.sfnExpressRequest +
      childSeconds * (64 / 1024) * PRICES.sfnExpressGbSecond +
      PRICES.lambdaRequest)
  );
}

/** Resident memory of a process in bytes (Linux), 0 where unknown. */
function processRss(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export interface BatchBenchResult {
  scenario: string;
  profile: string;
  rows: number;
  chunkSize: number;
  wallSeconds: number;
  rowsPerSecond: number;
  /** The Node process: API, worker and local runtime (and, in the embedded profile, the emulators). */
  peakRssMb: number;
  /** The aws-local profile's emulators, each in its own process. */
  emulatorPeakRssMb: Record<string, number>;
  peakHeapMb: number;
  status: string;
  perThousandRows: Record<string, number>;
  dollarsPerMillionRows: {
    onDemand: number;
    provisioned: number;
    anatomyOnDemand: Record<string, number>;
    distributedMapExpress100: number;
  };
  byOperationPerThousandRows: Record<string, Record<string, number>>;
}

export async function batchBench(
  rows: number,
  chunkSize: number,
  profile: 'embedded' | 'aws-local' = 'embedded',
): Promise<BatchBenchResult> {
  const stack: LocalStack = await startLocalStack({
    port: 0,
    profile,
    extraFunctions: [{ name: NOOP, handler: noop, timeoutSeconds: 30, memoryMb: 128 }],
    processors: {
      'bench.noop': {
        kind: 'chunks',
        target: { type: 'lambda', functionName: NOOP },
        timeoutSeconds: 30,
        maxAttempts: 3,
      },
    },
  });
  const meter = new Meter();
  meter.indexes.set(stack.info.tables.jobs, resources.tables.jobs.indexes);
  let peakRss = process.memoryUsage().rss;
  let peakHeap = process.memoryUsage().heapUsed;
  const emulators: Record<string, number> = {};
  const sampler = setInterval(() => {
    const usage = process.memoryUsage();
    peakRss = Math.max(peakRss, usage.rss);
    peakHeap = Math.max(peakHeap, usage.heapUsed);
    for (const { name, pid } of stack.info.processes) {
      emulators[name] = Math.max(emulators[name] ?? 0, pid === undefined ? 0 : processRss(pid));
    }
  }, 200);
  try {
    const api = (path: string, init?: RequestInit) =>
      fetch(`${stack.info.api}${path}`, init).then(async (r) => ({ status: r.status, body: await r.json() }));
    const created = await api('/v1/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'bench-batch', batch: { processor: 'bench.noop', upload: true, chunkSize } }),
    });
    if (created.status !== 202) throw new Error(`submit answered ${created.status}`);
    const id = created.body.id as string;
    // The upload is the caller's own traffic: not metered.
    const status = await new Promise<number>((resolve, reject) => {
      // S3 wants a presigned PUT's length up front: count the bytes first (the rows are generated).
      let length = 0;
      for (const piece of lines(rows)) length += Buffer.byteLength(piece);
      const put = request(
        created.body.batch.upload.url,
        { method: 'PUT', headers: { 'content-length': length } },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
        },
      );
      put.on('error', reject);
      Readable.from(lines(rows)).pipe(put);
    });
    if (status !== 200) throw new Error(`upload answered ${status}`);
    installMeter(meter);
    const started = performance.now();
    await api(`/v1/jobs/${id}/release`, { method: 'POST' });
    let job: {
      status: string;
      batch: { finalized: boolean; chunks: { total: number } };
      counts: { succeeded: number };
    };
    for (;;) {
      job = (await api(`/v1/jobs/${id}?wait=20`)).body;
      if (job.batch.finalized) break;
    }
    const seconds = (performance.now() - started) / 1000;
    uninstallMeter();
    if (job.counts.succeeded !== rows) throw new Error(`expected ${rows} rows, got ${JSON.stringify(job.counts)}`);
    // The processor's own invocations are the user's cost, as in the task scenarios.
    const { byOperation, billed } = systemUsage(meter, (op) => op.startsWith(`Lambda.${NOOP}`));
    const onDemand = dollars(billed, 'onDemand');
    const provisioned = dollars(billed, 'provisioned');
    const perMillion = (v: number) => Number(((v / rows) * 1e6).toFixed(4));
    return {
      scenario: `batch${chunkSize}`,
      profile,
      rows,
      chunkSize,
      wallSeconds: Number(seconds.toFixed(1)),
      rowsPerSecond: Math.round(rows / seconds),
      peakRssMb: Math.round(peakRss / 1024 / 1024),
      emulatorPeakRssMb: Object.fromEntries(
        Object.entries(emulators).map(([k, v]) => [k, Math.round(v / 1024 / 1024)]),
      ),
      peakHeapMb: Math.round(peakHeap / 1024 / 1024),
      status: job.status,
      perThousandRows: Object.fromEntries(
        Object.entries(billed).map(([k, v]) => [k, Number(((v / rows) * 1000).toFixed(3))]),
      ),
      dollarsPerMillionRows: {
        onDemand: perMillion(onDemand.total),
        provisioned: perMillion(provisioned.total),
        anatomyOnDemand: Object.fromEntries(Object.entries(onDemand).map(([k, v]) => [k, perMillion(v)])),
        distributedMapExpress100: perMillion(distributedMap(rows)),
      },
      byOperationPerThousandRows: Object.fromEntries(
        Object.entries(byOperation).map(([op, u]) => [
          op,
          Object.fromEntries(
            Object.entries(u)
              .filter(([, v]) => v)
              .map(([k, v]) => [k, Number(((v / rows) * 1000).toFixed(3))]),
          ),
        ]),
      ),
    };
  } finally {
    uninstallMeter();
    clearInterval(sampler);
    await stack.stop();
  }
}
