import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalStack } from './stack.js';

/** `npm start`: the whole system on this machine. `-- --fresh` starts from empty state. */
const { values } = parseArgs({
  options: {
    fresh: { type: 'boolean', default: false },
    'state-dir': { type: 'string', default: resolve(import.meta.dirname, '..', '.local', 'state') },
  },
});

const stateDir = values['state-dir'] as string;
if (values.fresh) rmSync(stateDir, { recursive: true, force: true });

const port = Number(process.env.PORT ?? 3000);
const started = Date.now();
// Locally the sweeper looks for lost messages after 30 s, not AWS's 5 minutes: the embedded SQS
// loses its messages on every restart, and a developer should not wait for them.
const stack = await startLocalStack({ port, stateDir, handlerEnv: { SWEEP_GRACE_SECONDS: '30' } });
const { info } = stack;

const lines = [
  `jobs: local stack up in ${Date.now() - started} ms (${info.mode} cloud, stage '${info.stage}')`,
  `  API          ${info.api}   (try: curl ${info.api}/v1/health)`,
  `  local info   ${info.api}/local/info`,
  `  DynamoDB     ${info.endpoints.dynamodb}   tables: ${Object.values(info.tables).join(', ')}`,
  `  SQS          ${info.endpoints.sqs}   queues: ${Object.values(info.queues)
    .map((q) => q.name)
    .join(', ')}`,
  `  S3           ${info.endpoints.s3}   buckets: ${Object.values(info.buckets).join(', ')}`,
  `  Lambda       ${info.endpoints.lambda}   functions: ${info.functions.join(', ')}`,
  `  state        ${info.mode === 'embedded' ? stateDir : 'kept by the external emulator'} (npm start -- --fresh to clear)`,
  'Ctrl-C stops everything.',
];
console.log(lines.join('\n'));

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(`jobs: ${signal}, stopping…`);
    stack
      .stop()
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        console.error(error);
        process.exit(1);
      });
  });
}
