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
  return environmentSchema.parse(all[name]);
}
