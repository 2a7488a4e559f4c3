import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Context } from 'aws-lambda';
import { asFunction } from '../../shared/aws/iam-record.js';
import { currentMeter } from '../../shared/aws/meter.js';

// biome-ignore lint/suspicious/noExplicitAny: Lambda handlers take and return any JSON.
export type LambdaHandler = (event: any, context: Context) => Promise<any>;

export interface LocalFunction {
  name: string;
  /**
   * A handler that may serve several invocations at once (stateless fixtures). Real Lambda code
   * should give `load` instead.
   */
  handler?: LambdaHandler;
  /**
   * Makes a fresh sandbox: a new instance of the handler module. Lambda runs one invocation at a
   * time per sandbox, and handlers rely on it (module-level state such as Powertools' batch
   * processor), so concurrent invocations each get a sandbox of their own.
   */
  load?: () => Promise<LambdaHandler>;
  timeoutSeconds: number;
  memoryMb: number;
}

let sandboxes = 0;

/**
 * A fresh instance of a handler module's export, as a new Lambda sandbox would have: the query
 * string makes the module loader evaluate the module again (its imports stay shared).
 */
export async function loadHandler(module: URL, exportName = 'handler'): Promise<LambdaHandler> {
  const url = new URL(module.href);
  url.searchParams.set('sandbox', String(++sandboxes));
  const loaded = (await import(url.href)) as Record<string, unknown>;
  const handler = loaded[exportName];
  if (typeof handler !== 'function') throw new Error(`${fileURLToPath(module)} exports no function '${exportName}'`);
  return handler as LambdaHandler;
}

/**
 * A function run from its handler module as Lambda runs it (a sandbox per concurrent invocation).
 * Loaded once now, so a broken module fails the start rather than the first invocation.
 */
export async function moduleFunction(fn: {
  name: string;
  module: URL;
  export?: string;
  timeoutSeconds: number;
  memoryMb: number;
}): Promise<LocalFunction> {
  await loadHandler(fn.module, fn.export);
  return {
    name: fn.name,
    load: () => loadHandler(fn.module, fn.export),
    timeoutSeconds: fn.timeoutSeconds,
    memoryMb: fn.memoryMb,
  };
}

/** A warm sandbox: one handler instance, busy with at most one invocation. */
interface Sandbox {
  handler: LambdaHandler;
  busy: boolean;
}

/** What a failed invocation reports, shaped as Lambda's `X-Amz-Function-Error` payload. */
export interface FunctionError {
  errorType: string;
  errorMessage: string;
  trace?: string[];
}

export type InvokeOutcome = { ok: true; result: unknown } | { ok: false; error: FunctionError };

export class FunctionNotFoundError extends Error {
  constructor(readonly functionName: string) {
    super(`Function not found: ${functionName}`);
  }
}

/**
 * Plays the Lambda service for functions registered in this process: builds the context object,
 * enforces the timeout (the late handler keeps running, as nothing can kill it in-process, but its
 * answer is dropped) and turns throws into Lambda's error payload.
 */
export class FunctionHost {
  private readonly functions = new Map<string, LocalFunction>();
  private readonly sandboxes = new Map<string, Sandbox[]>();
  private readonly inFlight = new Set<{ name: string; end: (outcome: InvokeOutcome) => void }>();

  constructor(
    private readonly region: string,
    private readonly accountId = '000000000000',
  ) {}

  register(fn: LocalFunction): void {
    if (!fn.handler && !fn.load) throw new Error(`Function ${fn.name} needs a handler or a loader`);
    this.functions.set(fn.name, fn);
    this.sandboxes.set(fn.name, []);
  }

  /** Sandboxes created so far for a function (cold starts). */
  sandboxCount(name: string): number {
    return this.sandboxes.get(name)?.length ?? 0;
  }

  private async acquire(fn: LocalFunction): Promise<Sandbox> {
    const pool = this.sandboxes.get(fn.name) as Sandbox[];
    const free = pool.find((sandbox) => !sandbox.busy);
    if (free) {
      free.busy = true;
      return free;
    }
    // Reserve the slot before the (slow) load so concurrent cold starts do not share it.
    const sandbox: Sandbox = { handler: async () => undefined, busy: true };
    pool.push(sandbox);
    try {
      sandbox.handler = fn.load ? await fn.load() : (fn.handler as LambdaHandler);
    } catch (error) {
      pool.splice(pool.indexOf(sandbox), 1);
      throw error;
    }
    return sandbox;
  }

  has(name: string): boolean {
    return this.functions.has(name);
  }

  names(): string[] {
    return [...this.functions.keys()];
  }

  arn(name: string): string {
    return `arn:aws:lambda:${this.region}:${this.accountId}:function:${name}`;
  }

  async invoke(name: string, event: unknown): Promise<InvokeOutcome> {
    const fn = this.functions.get(name);
    if (!fn) throw new FunctionNotFoundError(name);
    const timeoutMs = fn.timeoutSeconds * 1000;
    const deadline = Date.now() + timeoutMs;
    const requestId = randomUUID();
    const context: Context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: fn.name,
      functionVersion: '$LATEST',
      invokedFunctionArn: this.arn(fn.name),
      memoryLimitInMB: String(fn.memoryMb),
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${fn.name}`,
      logStreamName: `local/${requestId}`,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => {},
      fail: () => {},
      succeed: () => {},
    };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<InvokeOutcome>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            ok: false,
            error: {
              errorType: 'Sandbox.Timedout',
              errorMessage: `Task timed out after ${fn.timeoutSeconds.toFixed(2)} seconds`,
            },
          }),
        timeoutMs,
      );
    });
    // Every AWS call the handler makes, however late (a zombie's too), is this function's role's.
    const run = asFunction(fn.name, async (): Promise<InvokeOutcome> => {
      if (!fn.load) {
        try {
          return { ok: true, result: await (fn.handler as LambdaHandler)(event, context) };
        } catch (thrown) {
          return { ok: false, error: toFunctionError(thrown) };
        }
      }
      let sandbox: Sandbox;
      try {
        sandbox = await this.acquire(fn);
      } catch (thrown) {
        return { ok: false, error: { ...toFunctionError(thrown), errorType: 'Runtime.ImportModuleError' } };
      }
      try {
        return { ok: true, result: await sandbox.handler(event, context) };
      } catch (thrown) {
        return { ok: false, error: toFunctionError(thrown) };
      } finally {
        // A timed-out or killed invocation keeps its sandbox busy until its code really ends.
        sandbox.busy = false;
      }
    });
    let killed: (outcome: InvokeOutcome) => void = () => {};
    const kill = new Promise<InvokeOutcome>((resolve) => (killed = resolve));
    const entry = { name, end: killed };
    this.inFlight.add(entry);
    const started = performance.now();
    try {
      return await Promise.race([run, timedOut, kill]);
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(entry);
      // Lambda bills every invocation and memory × duration, rounded up to the millisecond.
      const billedMs = Math.ceil(performance.now() - started);
      currentMeter()?.add(`Lambda.${fn.name}`, {
        calls: 1,
        lambdaInvocations: 1,
        lambdaGbSeconds: (fn.memoryMb / 1024) * (billedMs / 1000),
      });
    }
  }

  /**
   * Fault injection: every running invocation of `name` ends now as a failure, as if its sandbox
   * died. The handler's code cannot be stopped in-process and runs on as a zombie, which is the
   * harder case for the engine (its late writes must be refused).
   */
  kill(name: string): number {
    let count = 0;
    for (const entry of this.inFlight) {
      if (entry.name !== name) continue;
      entry.end({ ok: false, error: { errorType: 'Runtime.Killed', errorMessage: 'sandbox killed' } });
      count++;
    }
    return count;
  }
}

export function toFunctionError(thrown: unknown): FunctionError {
  if (thrown instanceof Error) {
    return {
      errorType: thrown.name || 'Error',
      errorMessage: thrown.message,
      trace: thrown.stack?.split('\n'),
    };
  }
  return { errorType: 'Error', errorMessage: String(thrown) };
}
