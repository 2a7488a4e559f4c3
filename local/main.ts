import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { demoProcessors } from '../examples/processors/catalog.js';
import { localProcessors } from './processors.js';
import { type LocalAuthOptions, localAuthFromEnv } from './runtime/authorizers.js';
import { startLocalStack } from './stack.js';

/** `npm start`: the whole system on this machine. `-- --fresh` starts from empty state. */
const { values } = parseArgs({
  options: {
    fresh: { type: 'boolean', default: false },
    profile: { type: 'string', default: process.env.JOBS_PROFILE ?? 'embedded' },
    'state-dir': { type: 'string', default: resolve(import.meta.dirname, '..', '.local', 'state') },
  },
});

const profile = values.profile as string;
if (profile !== 'embedded' && profile !== 'aws-local') {
  console.error(`jobs: unknown profile '${profile}' (embedded | aws-local)`);
  process.exit(2);
}
// Each profile keeps its own state: the engines' files are not interchangeable.
const stateDir = join(values['state-dir'] as string, profile);
if (values.fresh) rmSync(stateDir, { recursive: true, force: true });

let auth: LocalAuthOptions;
try {
  auth = localAuthFromEnv(process.env);
} catch (error) {
  console.error(`jobs: bad LOCAL_AUTH / LOCAL_IAM_USERS / LOCAL_JWT_AUDIENCE: ${(error as Error).message}`);
  process.exit(2);
}

const port = Number(process.env.PORT ?? 3000);
const started = Date.now();
// The local queues (embedded SQS, moto) keep no messages across a restart: sweep once at start,
// with no grace, so the jobs that were waiting go on.
const failed = (error: Error): never => {
  console.error(`jobs: ${error.message}`);
  process.exit(1);
};
const processors = await localProcessors(process.env).catch(failed);
const stack = await startLocalStack({
  port,
  stateDir,
  profile,
  auth,
  ...processors,
  handlerEnv: { SWEEP_GRACE_SECONDS: '0', PURGE_EXPIRED: 'true' },
}).catch(failed);
const { info } = stack;
const demos = processors.demo ? demoProcessors.map((d) => d.name) : [];

const lines = [
  `jobs: local stack up in ${Date.now() - started} ms (${info.mode} cloud, stage '${info.stage}')`,
  `  API          ${info.api}   (try: curl ${info.api}/v1/health)`,
  `  local info   ${info.api}/local/info`,
  `  auth         ${describeAuth(info)}`,
  `  DynamoDB     ${info.endpoints.dynamodb}   tables: ${Object.values(info.tables).join(', ')}`,
  `  SQS          ${info.endpoints.sqs}   queues: ${Object.values(info.queues)
    .map((q) => q.name)
    .join(', ')}`,
  `  S3           ${info.endpoints.s3}   buckets: ${Object.values(info.buckets).join(', ')}`,
  `  Lambda       ${info.endpoints.lambda}   functions: ${info.functions.join(', ')}`,
  `  processors   ${[...new Set([...demos, ...Object.keys(processors.processors ?? {})])].join(', ') || 'none'}${
    processors.demo ? '' : ' (DEMO_PROCESSORS=off)'
  }`,
  `  state        ${
    info.mode === 'external'
      ? 'kept by the external emulator'
      : `${stateDir}${info.mode === 'aws-local' ? ' (tables; moto keeps queues and objects in memory)' : ''}`
  } (npm start -- --fresh to clear)`,
  'Ctrl-C stops everything.',
];
console.log(lines.join('\n'));

function describeAuth({ auth, api }: typeof info): string {
  if (auth.mode === 'iam') {
    return `iam: SigV4 for execute-api in ${auth.region} (users: ${auth.users?.join(', ')}; curl --aws-sigv4 "aws:amz:${auth.region}:execute-api" --user KEY:SECRET)`;
  }
  if (auth.mode === 'jwt') {
    return `jwt: Bearer tokens of ${auth.issuer}, audience ${auth.audience} (get one: curl -X POST ${api}/local/token -d '{"sub":"me"}')`;
  }
  return `none: every request acts as '${auth.defaultOwner}', or as the name in header ${auth.ownerHeader}`;
}

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

// After the signal handlers: a stop during this first sweep must still be a clean one.
await stack.schedules.find((schedule) => schedule.name === 'sweep')?.tick({ afterRestart: true });
