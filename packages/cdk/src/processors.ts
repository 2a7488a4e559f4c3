import { aws_lambda as lambda, Stack, type aws_secretsmanager as secretsmanager, Token } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { Backoff } from '../../../shared/core/backoff.js';
import { type ProcessorConfig, type ProcessorKind, ProcessorRegistry } from '../../../shared/core/processors.js';

export type { Backoff, ProcessorKind };

/** What every processor may say about how it is called; the server's defaults apply where unset. */
export interface ProcessorOptions {
  /** `tasks` ({job, task} per call) or `chunks` (batch rows) [tasks]. */
  kind?: ProcessorKind;
  /** How long the worker waits for one call; at most the worker's timeout less its margin (285 s). */
  timeoutSeconds?: number;
  /** Attempts per task or chunk, the first included [3]. */
  maxAttempts?: number;
  /** Delay between attempts [exponential from 2 s, at most 300 s, with jitter]. */
  backoff?: Backoff;
}

/** A Lambda function the worker invokes. `timeoutSeconds` defaults to the function's own timeout where the construct can read it. */
export interface LambdaProcessor extends ProcessorOptions {
  function: lambda.IFunction;
}

/** An HTTPS endpoint the worker POSTs to, signing each request when a secret is given. `timeoutSeconds` defaults to 30. */
export interface HttpProcessor extends ProcessorOptions {
  url: string;
  /** The signing secret: a Secrets Manager secret, or its name. The worker may read it (GetSecretValue only). */
  secret?: secretsmanager.ISecret | string;
  /** Let the worker call private or loopback addresses (refused by default). */
  allowPrivateNetwork?: boolean;
}

export type JobProcessor = LambdaProcessor | HttpProcessor;

export const HTTP_TIMEOUT_SECONDS = 30;
/** Lambda's own default when a function sets no timeout. */
const LAMBDA_DEFAULT_TIMEOUT_SECONDS = 3;

export interface RegisteredProcessors {
  /** The PROCESSORS variable's value: the registry format shared/core/processors.ts parses. */
  registry: Record<string, ProcessorConfig>;
  /** Exactly the functions the worker may invoke, and the secrets it may read. */
  functionArns: string[];
  secretArns: string[];
}

/**
 * Turns the construct's processors into the registry the worker reads and the grants it needs,
 * validated as the worker validates it at cold start.
 */
export function registerProcessors(
  scope: Construct,
  processors: Record<string, JobProcessor>,
  limits: { workerTimeoutSeconds: number; maxReceiveCount: number },
): RegisteredProcessors {
  const stack = Stack.of(scope);
  const registry: Record<string, ProcessorConfig> = {};
  const functionArns = new Set<string>();
  const secretArns = new Set<string>();
  for (const [name, processor] of Object.entries(processors)) {
    const { kind, timeoutSeconds, maxAttempts, backoff } = processor;
    let target: ProcessorConfig['target'];
    let defaultTimeout: number;
    if ('function' in processor) {
      const fn = processor.function;
      // A function of this stack is named as it is deployed; any other by its ARN, which also
      // reaches a function in another account or region.
      const ownedHere = fn.node.defaultChild instanceof lambda.CfnFunction && Stack.of(fn) === stack;
      target = { type: 'lambda', functionName: ownedHere ? fn.functionName : fn.functionArn };
      functionArns.add(fn.functionArn);
      defaultTimeout =
        fn instanceof lambda.Function ? (fn.timeout?.toSeconds() ?? LAMBDA_DEFAULT_TIMEOUT_SECONDS) : Number.NaN;
      if (timeoutSeconds === undefined && Number.isNaN(defaultTimeout)) {
        throw new Error(`Processor ${name}: give timeoutSeconds (the construct cannot read an imported function's)`);
      }
    } else {
      const { url, secret, allowPrivateNetwork } = processor;
      target = { type: 'http', url };
      if (typeof secret === 'string') {
        target.secretName = secret;
        // Secrets Manager appends six random characters to a secret's ARN.
        secretArns.add(
          `arn:${stack.partition}:secretsmanager:${stack.region}:${stack.account}:secret:${secret}-??????`,
        );
      } else if (secret) {
        target.secretName = secret.secretName;
        secretArns.add(secret.secretFullArn ?? `${secret.secretArn}-??????`);
      }
      if (allowPrivateNetwork !== undefined) target.allowPrivateNetwork = allowPrivateNetwork;
      defaultTimeout = HTTP_TIMEOUT_SECONDS;
    }
    registry[name] = {
      target,
      ...(kind !== undefined ? { kind } : {}),
      timeoutSeconds: timeoutSeconds ?? defaultTimeout,
      ...(maxAttempts !== undefined ? { maxAttempts } : {}),
      ...(backoff !== undefined ? { backoff } : {}),
    };
  }
  // The same validation the worker runs at cold start, now at synth time. Names and ARNs only
  // known at deploy time stand in as plain words: their shape is CloudFormation's to check.
  const checkable = JSON.stringify(registry, (key, value) =>
    typeof value === 'string' && Token.isUnresolved(value)
      ? key === 'url'
        ? 'https://deploy-time-value.invalid/'
        : 'deploy-time-value'
      : value,
  );
  ProcessorRegistry.fromJson(checkable, limits);
  return { registry, functionArns: [...functionArns], secretArns: [...secretArns] };
}
