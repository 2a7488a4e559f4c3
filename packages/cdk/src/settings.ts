import * as z from 'zod';
import { type EventSourceQueue, resources } from '../../../shared/resources.js';

/** Who may call the API: IAM (SigV4) principals, or bearers of JWTs from one issuer. */
export type JobManagerAuth =
  | { mode: 'iam' }
  | {
      mode: 'jwt';
      issuer: string;
      audience: string[];
      /** The claim that names a caller's owner: `sub` (each user their own jobs) or e.g. `tenant`. Default `sub`. */
      ownerClaim?: string;
      /** A scope whose bearers see every owner's jobs. */
      adminScope?: string;
    };

/**
 * The job manager's settings: plain values, so the repository's stack reads them from cdk.json
 * (`context.environments.NAME`) and an app passes them as props. Defaults in brackets.
 */
export interface JobManagerSettings {
  /** The functions' log level [INFO]. */
  logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /** Days the functions' and the API's logs, and the bucket's access logs, are kept [30]. */
  logRetentionDays?: number;
  /** Finished jobs and their idempotency keys (DynamoDB TTL). At least a day, so replays are recognised [30]. */
  jobRetentionDays?: number;
  /** Types whose finished jobs are kept longer or shorter than `jobRetentionDays` [{}]. */
  jobRetentionDaysByType?: Record<string, number>;
  /** Find's indexes (GET /v1/jobs, /v1/tasks): ~4 index writes per single-task job; false turns Find off [true]. */
  searchIndex?: boolean;
  /** Batch inputs, outputs and large payloads in S3 (lifecycle rule) [30]. */
  objectRetentionDays?: number;
  /** Subscribed to the alarms topic [none]. */
  alarmEmail?: string | null;
  /** [{ mode: 'iam' }] */
  auth?: JobManagerAuth;
  /** The API stage's throttle [100 requests/s, bursts of 200]. */
  apiThrottle?: { rateLimit: number; burstLimit: number };
  /** Memory per function (`api`, `worker`, …), overriding the declaration (timeouts stay declared: queues depend on them). */
  memoryMb?: Record<string, number>;
  /** Upper bound on concurrent worker invocations the work queue's event source starts [10]. */
  workerMaxConcurrency?: number;
  /**
   * Seconds an event source may gather messages before it invokes its function with a batch that
   * is not full (Lambda's MaximumBatchingWindowInSeconds, 0–300), by queue: `{ "work": 1 }`. A
   * window saves invocations and requests when traffic is thin, and costs a message up to that
   * long on its way [as declared in shared/resources.ts].
   */
  batchingWindowSeconds?: Partial<Record<EventSourceQueue, number>>;
  /**
   * Reserved concurrency: the API's is a cap, so long polls (`?wait=20` holds an invocation for up
   * to 20 s) cannot take the account's concurrency from the worker; the worker's is a guarantee, at
   * least what its event source may start. `null` reserves none (for an account with a low limit:
   * AWS keeps 100 unreserved). [100 and 10]
   */
  apiReservedConcurrency?: number | null;
  workerReservedConcurrency?: number | null;
  /**
   * Origins (`https://app.example.com`) whose browsers may PUT/GET the presigned upload and
   * download URLs. None by default: no CORS rule at all, API clients are not browsers.
   */
  corsOrigins?: string[];
  /** Buckets (besides the construct's own) that batches may name as `input.bucket`: read access is granted [none]. */
  batchInputBuckets?: string[];
  /** In the construct's own bucket, the one prefix batches may name as input (where services drop files); '' for none ['incoming/']. */
  batchInputPrefix?: string;
  /** The largest batch input file or upload, in bytes [5 GiB]. */
  batchInputMaxBytes?: number;
  /** Owners (`iam:AROA…`, `jwt:sub:…`) or IAM ARNs that see and act on every owner's jobs [none]. */
  adminPrincipals?: string[];
  /** Owners whose queued submissions may name another owner in an `Owner` message attribute [none]. */
  trustedSubmitters?: string[];
  /** `destroy` for throwaway environments; `retain` keeps data when the stack is deleted ['retain']. */
  removal?: 'destroy' | 'retain';
}

const authSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('iam') }),
  z.strictObject({
    mode: z.literal('jwt'),
    issuer: z.url(),
    audience: z.array(z.string().min(1)).min(1),
    ownerClaim: z.string().min(1).default('sub'),
    adminScope: z.string().min(1).optional(),
  }),
]);

const windowSeconds = z.number().int().min(0).max(300);
const declaredWindows = Object.fromEntries(
  resources.eventSources.map((source) => [source.queue, source.maximumBatchingWindowSeconds]),
) as Record<EventSourceQueue, number>;
/** Only the declared event sources' queues; what is not given stays as declared. */
const windowsSchema = z
  .strictObject(
    Object.fromEntries(resources.eventSources.map((source) => [source.queue, windowSeconds.optional()])) as Record<
      EventSourceQueue,
      z.ZodOptional<typeof windowSeconds>
    >,
  )
  .transform((given): Record<EventSourceQueue, number> => ({ ...declaredWindows, ...given }))
  .default(declaredWindows);

/** The settings' ranges and defaults: validated at synth, so a bad value fails the synth rather than the deploy. */
export const settingsSchema = z.strictObject({
  logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  logRetentionDays: z.number().int().positive().default(30),
  jobRetentionDays: z.number().int().min(1).default(30),
  searchIndex: z.boolean().default(true),
  jobRetentionDaysByType: z.record(z.string(), z.number().int().min(1)).default({}),
  objectRetentionDays: z.number().int().min(1).default(30),
  alarmEmail: z.email().nullable().default(null),
  auth: authSchema.default({ mode: 'iam' }),
  apiThrottle: z
    .strictObject({ rateLimit: z.number().positive(), burstLimit: z.number().int().positive() })
    .default({ rateLimit: 100, burstLimit: 200 }),
  memoryMb: z.record(z.string(), z.number().int().min(128).max(10240)).default({}),
  workerMaxConcurrency: z.number().int().min(2).max(1000).default(10),
  batchingWindowSeconds: windowsSchema,
  apiReservedConcurrency: z.number().int().min(1).nullable().default(100),
  workerReservedConcurrency: z.number().int().min(1).nullable().default(10),
  corsOrigins: z.array(z.string().regex(/^https?:\/\/[^/\s*]+$/, 'an origin: scheme://host[:port]')).default([]),
  batchInputBuckets: z.array(z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)).default([]),
  batchInputPrefix: z.string().max(256).default('incoming/'),
  batchInputMaxBytes: z
    .number()
    .int()
    .positive()
    .default(5 * 1024 ** 3),
  adminPrincipals: z.array(z.string().min(1)).default([]),
  trustedSubmitters: z.array(z.string().min(1)).default([]),
  removal: z.enum(['destroy', 'retain']).default('retain'),
});

export type ResolvedSettings = z.output<typeof settingsSchema>;

// The documented interface and the schema describe the same settings: each must accept the other.
type Accepts<A, B> = [B] extends [A] ? true : never;
const _schemaTakesInterface: Accepts<z.input<typeof settingsSchema>, JobManagerSettings> = true;
const _interfaceTakesSchema: Accepts<JobManagerSettings, z.input<typeof settingsSchema>> = true;
void _schemaTakesInterface;
void _interfaceTakesSchema;

/** Settings that are valid one by one but not together; `where` names the place they came from. */
export function settingsConflicts(settings: ResolvedSettings, where = ''): string[] {
  const problems: string[] = [];
  // Fewer reserved than the event source may start: its invocations are throttled, messages bounce.
  if (
    settings.workerReservedConcurrency !== null &&
    settings.workerReservedConcurrency < settings.workerMaxConcurrency
  ) {
    problems.push(
      `${where}workerReservedConcurrency must be at least workerMaxConcurrency (${settings.workerMaxConcurrency}), or null`,
    );
  }
  for (const source of resources.eventSources) {
    const window = settings.batchingWindowSeconds[source.queue];
    const setting = `${where}batchingWindowSeconds.${source.queue}`;
    // AWS refuses batches above ten without a window.
    if (source.batchSize > 10 && window < 1) {
      problems.push(`${setting} must be at least 1: its event source takes batches of ${source.batchSize}`);
    }
    // A message waits out the window in flight, then its batch runs: both within its visibility,
    // or it is handed out again while its batch still runs.
    const visibility = resources.queues[source.queue].visibilityTimeoutSeconds;
    const timeout = resources.functions[source.function].timeoutSeconds;
    if (window + timeout > visibility) {
      problems.push(
        `${setting} must be at most ${visibility - timeout}: with ${source.function}'s ${timeout} s it must fit the queue's ${visibility} s visibility timeout`,
      );
    }
  }
  return problems;
}

/** Validates and fills in defaults; the message names every bad field. */
export function resolveSettings(settings: JobManagerSettings, where = ''): ResolvedSettings {
  const result = settingsSchema.safeParse(settings);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => `${where}${issue.path.join('.') || '(top)'}: ${issue.message}`);
    throw new Error(`JobManager settings: ${issues.join('; ')}`);
  }
  const conflicts = settingsConflicts(result.data, where);
  if (conflicts.length) throw new Error(`JobManager settings: ${conflicts.join('; ')}`);
  return result.data;
}
