import { z } from 'zod';

/**
 * Per-environment settings, read from `cdk.json` (`context.environments.NAME`) and validated so a
 * typo fails the synth rather than the deploy.
 */
const authSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('iam') }),
  z.strictObject({
    mode: z.literal('jwt'),
    issuer: z.url(),
    audience: z.array(z.string().min(1)).min(1),
    /** The claim that names a caller's owner: `sub` (each user their own jobs) or e.g. `tenant`. */
    ownerClaim: z.string().min(1).default('sub'),
    /** A scope whose bearers see every owner's jobs. */
    adminScope: z.string().min(1).optional(),
  }),
]);

export const environmentSchema = z.strictObject({
  /** Target account and region; unset means the CLI's (environment-agnostic synth). */
  account: z
    .string()
    .regex(/^\d{12}$/)
    .nullable()
    .default(null),
  region: z.string().default('us-east-1'),
  logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  logRetentionDays: z.number().int().positive().default(30),
  /** Finished jobs and their idempotency keys (DynamoDB TTL). At least a day, so replays are recognised. */
  jobRetentionDays: z.number().int().min(1).default(30),
  /** Find's indexes (GET /v1/jobs, /v1/tasks): ~4 index writes per single-task job; false turns Find off. */
  searchIndex: z.boolean().default(true),
  /** Types whose finished jobs are kept longer or shorter than `jobRetentionDays`. */
  jobRetentionDaysByType: z.record(z.string(), z.number().int().min(1)).default({}),
  /** Batch inputs, outputs and large payloads in S3 (lifecycle rule). */
  objectRetentionDays: z.number().int().min(1).default(30),
  alarmEmail: z.email().nullable().default(null),
  auth: authSchema.default({ mode: 'iam' }),
  apiThrottle: z
    .strictObject({ rateLimit: z.number().positive(), burstLimit: z.number().int().positive() })
    .default({ rateLimit: 100, burstLimit: 200 }),
  /** Memory per function, overriding the declaration (timeouts stay declared: queues depend on them). */
  memoryMb: z.record(z.string(), z.number().int().min(128).max(10240)).default({}),
  /** Upper bound on concurrent worker invocations the work queue's event source starts. */
  workerMaxConcurrency: z.number().int().min(2).max(1000).default(10),
  /**
   * Reserved concurrency: the API's is a cap, so long polls (`?wait=20` holds an invocation for up
   * to 20 s) cannot take the account's concurrency from the worker; the worker's is a guarantee, at
   * least what its event source may start. `null` reserves none (for an account with a low limit:
   * AWS keeps 100 unreserved).
   */
  apiReservedConcurrency: z.number().int().min(1).nullable().default(100),
  workerReservedConcurrency: z.number().int().min(1).nullable().default(10),
  /**
   * Origins (`https://app.example.com`) whose browsers may PUT/GET the presigned upload and
   * download URLs. None by default: no CORS rule at all, API clients are not browsers.
   */
  corsOrigins: z.array(z.string().regex(/^https?:\/\/[^/\s*]+$/, 'an origin: scheme://host[:port]')).default([]),
  /** The processor registry (same format as the PROCESSORS variable). */
  processors: z.record(z.string(), z.unknown()).default({}),
  /** Buckets (besides the stack's own) that batches may name as `input.bucket`: read access is granted. */
  batchInputBuckets: z.array(z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)).default([]),
  /** In the stack's own bucket, the one prefix batches may name as input (where services drop files); '' for none. */
  batchInputPrefix: z.string().max(256).default('incoming/'),
  /** The largest batch input file or upload, in bytes. */
  batchInputMaxBytes: z
    .number()
    .int()
    .positive()
    .default(5 * 1024 ** 3),
  /** Owners (`iam:AROA…`, `jwt:sub:…`) or IAM ARNs that see and act on every owner's jobs. */
  adminPrincipals: z.array(z.string().min(1)).default([]),
  /** Owners whose queued submissions may name another owner in an `Owner` message attribute. */
  trustedSubmitters: z.array(z.string().min(1)).default([]),
  /** Deploy the demo processors of API.md (demo.echo, …) for smoke tests. */
  demoProcessors: z.boolean().default(false),
  /** `destroy` for throwaway environments; `retain` keeps data when the stack is deleted. */
  removal: z.enum(['destroy', 'retain']).default('retain'),
});

export type EnvironmentConfig = z.output<typeof environmentSchema>;

export function loadEnvironment(environments: unknown, name: string): EnvironmentConfig {
  const all = z.record(z.string(), z.unknown()).parse(environments ?? {});
  if (!(name in all)) {
    throw new Error(`No environment '${name}' in cdk.json (context.environments): ${Object.keys(all).join(', ')}`);
  }
  const config = environmentSchema.parse(all[name]);
  // Fewer reserved than the event source may start: its invocations are throttled, messages bounce.
  if (config.workerReservedConcurrency !== null && config.workerReservedConcurrency < config.workerMaxConcurrency) {
    throw new Error(
      `environments.${name}.workerReservedConcurrency must be at least workerMaxConcurrency (${config.workerMaxConcurrency}), or null`,
    );
  }
  return config;
}
