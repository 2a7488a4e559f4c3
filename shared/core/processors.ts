import * as z from 'zod';
import type { Backoff } from './backoff.js';

/**
 * Processors are registered by name in configuration; submitters only ever name them. The target
 * says how to call one; a third kind (pull workers) will join `lambda` and `http`.
 */
export type ProcessorTarget =
  | { type: 'lambda'; functionName: string }
  | {
      type: 'http';
      url: string;
      /**
       * Where the signing secret lives (never in the configuration itself): an AWS Secrets Manager
       * secret name (in AWS), or an environment variable's name (local development).
       */
      secretName?: string;
      secretEnv?: string;
      /** Loopback and private addresses are refused unless a processor is allowed them (local development). */
      allowPrivateNetwork?: boolean;
    };

/**
 * What a processor is called with: one task at a time (`{job, task}`) or chunks of batch rows
 * (`{job, chunk}`). The two contracts do not mix, so a submission naming the other kind is refused.
 */
export type ProcessorKind = 'tasks' | 'chunks';

export interface Processor {
  name: string;
  kind: ProcessorKind;
  target: ProcessorTarget;
  timeoutSeconds: number;
  maxAttempts: number;
  backoff: Backoff;
}

const KIND_WORDS: Record<ProcessorKind, string> = { tasks: 'tasks', chunks: 'chunks of batch rows' };

/** The worker needs time around the processor call to record its outcome. */
export const PROCESSOR_TIMEOUT_MARGIN_SECONDS = 15;

const backoffSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('fixed'), delaySeconds: z.number().min(0).max(43200) }),
  z.strictObject({
    type: z.literal('linear'),
    delaySeconds: z.number().min(0).max(43200),
    maxSeconds: z.number().min(0).max(43200).optional(),
  }),
  z.strictObject({
    type: z.literal('exponential'),
    delaySeconds: z.number().min(0).max(43200),
    maxSeconds: z.number().min(0).max(43200).optional(),
    jitter: z.boolean().optional(),
  }),
]);

const processorSchema = z.strictObject({
  target: z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('lambda'), functionName: z.string().min(1) }),
    z
      .strictObject({
        type: z.literal('http'),
        url: z.url({ protocol: /^https?$/ }),
        secretName: z
          .string()
          .regex(/^[A-Za-z0-9/_+=.@-]{1,512}$/)
          .optional(),
        secretEnv: z
          .string()
          .regex(/^[A-Z_][A-Z0-9_]*$/)
          .optional(),
        allowPrivateNetwork: z.boolean().optional(),
      })
      .refine((t) => (t.secretName === undefined) !== (t.secretEnv === undefined), {
        message: 'give exactly one of secretName or secretEnv',
      }),
  ]),
  // Tasks by default: the task contract came first, and a batch processor left undeclared is
  // refused loudly at submit (400, saying it takes tasks), never called with the wrong shape.
  kind: z.enum(['tasks', 'chunks']).default('tasks'),
  timeoutSeconds: z.number().int().min(1).max(900),
  maxAttempts: z.number().int().min(1).max(100).default(3),
  backoff: backoffSchema.default({ type: 'exponential', delaySeconds: 2, maxSeconds: 300, jitter: true }),
});

export type ProcessorConfig = z.input<typeof processorSchema>;

export class ProcessorRegistry {
  private readonly processors: Map<string, Processor>;

  constructor(processors: Processor[]) {
    this.processors = new Map(processors.map((p) => [p.name, p]));
  }

  /**
   * Reads `{"name": {target, timeoutSeconds, maxAttempts?, backoff?}}`. A processor whose timeout
   * does not fit inside the worker's is refused at start, not discovered at 3 a.m.
   */
  static fromJson(json: string, limits: { workerTimeoutSeconds: number; maxReceiveCount: number }): ProcessorRegistry {
    const { workerTimeoutSeconds, maxReceiveCount } = limits;
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch (error) {
      throw new Error(`Processor configuration is not JSON: ${(error as Error).message}`);
    }
    const result = z.record(z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/), processorSchema).safeParse(raw);
    if (!result.success) {
      // One line naming each bad field: this reaches a person reading a failed start or synth.
      const issues = result.error.issues.map((issue) => `${issue.path.join('.') || '(top)'}: ${issue.message}`);
      throw new Error(`Processor configuration: ${issues.join('; ')}`);
    }
    const parsed = result.data;
    const processors = Object.entries(parsed).map(([name, config]) => {
      if (config.timeoutSeconds + PROCESSOR_TIMEOUT_MARGIN_SECONDS > workerTimeoutSeconds) {
        throw new Error(
          `Processor ${name}: timeoutSeconds ${config.timeoutSeconds} + ${PROCESSOR_TIMEOUT_MARGIN_SECONDS} s margin exceeds the worker's ${workerTimeoutSeconds} s`,
        );
      }
      if (config.maxAttempts >= maxReceiveCount) {
        // Each retry is a receive: more attempts than the redrive allows would dead-letter a healthy retry.
        throw new Error(
          `Processor ${name}: maxAttempts ${config.maxAttempts} must be below the work queue's maxReceiveCount ${maxReceiveCount}`,
        );
      }
      return { name, ...config } as Processor;
    });
    return new ProcessorRegistry(processors);
  }

  get(name: string): Processor | undefined {
    return this.processors.get(name);
  }

  /** Why `name` cannot take work of `kind`, in a submitter's words; undefined when it can. */
  refusal(name: string, kind: ProcessorKind): string | undefined {
    const processor = this.processors.get(name);
    if (!processor) return `'${name}' is not registered`;
    if (processor.kind !== kind) return `'${name}' takes ${KIND_WORDS[processor.kind]}, not ${KIND_WORDS[kind]}`;
    return undefined;
  }

  names(): string[] {
    return [...this.processors.keys()];
  }
}
