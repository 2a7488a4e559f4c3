import type { LookupAddress } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { InvokeCommand, type InvokeCommandOutput, type LambdaClient } from '@aws-sdk/client-lambda';
import { depthMessage, nestsDeeperThan } from '../core/json-depth.js';
import type { TaskError } from '../core/model.js';
import type { ChunkCall, ChunkRequest, ProcessorInvoker, TaskRequest } from '../core/ports.js';
import { taskReplySchema } from '../core/processor-replies.js';
import type { Processor } from '../core/processors.js';
import { SIGNATURE_HEADER, sign, TIMESTAMP_HEADER } from '../core/signature.js';
import type { AttemptOutcome } from '../core/tasks/transitions.js';
import { isSpecialAddress } from './special-addresses.js';

const MAX_REPLY_BYTES = 6 * 1024 * 1024;

function crash(message: string): { status: 'error'; error: TaskError; retryable: true } {
  return { status: 'error', error: { kind: 'crash', message }, retryable: true };
}

function timeout(message: string): { status: 'error'; error: TaskError; retryable: true } {
  return { status: 'error', error: { kind: 'timeout', message }, retryable: true };
}

/** Reads a processor's reply by the contract; anything off-contract is a crash (retried). */
export function classifyReply(reply: unknown): AttemptOutcome {
  const parsed = taskReplySchema.safeParse(reply);
  if (!parsed.success) return crash('processor reply does not match the contract');
  const log = parsed.data.log?.length ? { log: parsed.data.log } : {};
  if (parsed.data.status === 'ok') return { status: 'ok', result: parsed.data.result ?? null, ...log };
  const error = parsed.data.error ?? {};
  return {
    ...log,
    status: 'error',
    error: {
      kind: 'error',
      ...(error.code ? { code: error.code } : {}),
      message: error.message ?? 'processor reported an error',
    },
    retryable: error.retryable === true,
  };
}

/** Every address a host name has (an IP literal answers itself). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

const resolveAll: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** Calls processors by their target kind. */
export class TargetInvoker implements ProcessorInvoker {
  constructor(
    private readonly lambda: LambdaClient,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly resolve: Resolver = resolveAll,
  ) {}

  async invoke(processor: Processor, request: TaskRequest, signal: AbortSignal): Promise<AttemptOutcome> {
    const call = await this.call(processor, request, signal);
    if (call.status === 'error') return call;
    // A Lambda replies by the contract's envelope; an HTTP 2xx body is the result itself.
    if (processor.target.type === 'lambda') return classifyReply(call.reply);
    if (nestsDeeperThan(call.reply)) return crash(`processor reply ${depthMessage()}`);
    return { status: 'ok', result: call.reply };
  }

  /** A chunk's reply is read against its rows by the batch engine; here it is only fetched. */
  invokeChunk(processor: Processor, request: ChunkRequest, signal: AbortSignal): Promise<ChunkCall> {
    return this.call(processor, request, signal);
  }

  private call(processor: Processor, request: TaskRequest | ChunkRequest, signal: AbortSignal): Promise<ChunkCall> {
    const target = processor.target;
    if (target.type === 'lambda') return this.invokeLambda(target.functionName, request, signal);
    return this.secret(target).then((secret) =>
      secret === undefined
        ? crash(`signing secret ${target.secretName ?? target.secretEnv} is not available`)
        : invokeHttp(target.url, secret, Boolean(target.allowPrivateNetwork), this.resolve, request, signal),
    );
  }

  /** Secrets Manager values are cached for five minutes (Powertools), so rotation takes effect. */
  private async secret(target: { secretName?: string; secretEnv?: string }): Promise<string | undefined> {
    if (target.secretEnv) return this.env[target.secretEnv] || undefined;
    if (!target.secretName) return undefined;
    try {
      const value = await getSecret(target.secretName, { maxAge: 300 });
      return typeof value === 'string' ? value : undefined;
    } catch {
      return undefined;
    }
  }

  private async invokeLambda(
    functionName: string,
    request: TaskRequest | ChunkRequest,
    signal: AbortSignal,
  ): Promise<ChunkCall> {
    let response: InvokeCommandOutput;
    try {
      response = await this.lambda.send(
        new InvokeCommand({ FunctionName: functionName, Payload: Buffer.from(JSON.stringify(request)) }),
        { abortSignal: signal },
      );
    } catch (error) {
      if (signal.aborted) return timeout('processor did not answer in time');
      return crash(`invoke failed: ${(error as Error).name}: ${(error as Error).message}`);
    }
    const text = Buffer.from(response.Payload ?? []).toString('utf8');
    if (response.FunctionError) {
      let detail: { errorType?: string; errorMessage?: string } = {};
      try {
        detail = JSON.parse(text);
      } catch {}
      if (detail.errorType === 'Sandbox.Timedout') return timeout(detail.errorMessage ?? 'processor timed out');
      return crash(`${detail.errorType ?? 'Error'}: ${detail.errorMessage ?? 'processor threw'}`);
    }
    try {
      return { status: 'reply', reply: JSON.parse(text) };
    } catch {
      return crash('processor reply is not JSON');
    }
  }
}

/** The signing rule lives in the core, shared with the processor kit that verifies it. */
export { sign };

async function invokeHttp(
  url: string,
  secret: string,
  allowPrivate: boolean,
  resolve: Resolver,
  request: TaskRequest | ChunkRequest,
  signal: AbortSignal,
): Promise<ChunkCall> {
  // WHATWG parsing has already normalised the host: `2130706433`, `0x7f.1` and `127.1` are 127.0.0.1
  // here, and an IPv6 literal is compressed inside its brackets.
  const target = new URL(url);
  const hostname = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
  let addresses: LookupAddress[];
  try {
    addresses = await resolve(hostname);
  } catch (error) {
    return crash(`cannot resolve ${hostname}: ${(error as Error).message}`);
  }
  if (addresses.length === 0) return crash(`cannot resolve ${hostname}: no addresses`);
  // Every address is checked, not just the first: the connection may fall back to any of them, and
  // only these are connected to (no second lookup to rebind).
  const special = addresses.find((resolved) => isSpecialAddress(resolved.address));
  if (!allowPrivate && special) {
    return {
      status: 'error',
      error: {
        kind: 'error',
        code: 'PRIVATE_ADDRESS',
        message: `${hostname} resolves to ${special.address}, a private or special-purpose address`,
      },
      retryable: false,
    };
  }
  const [first] = addresses as [LookupAddress, ...LookupAddress[]];
  const body = JSON.stringify(request);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<ChunkCall>((resolve) => {
    const req = send(
      target,
      {
        method: 'POST',
        signal,
        lookup: (_host, options, callback) =>
          options.all ? callback(null, addresses) : callback(null, first.address, first.family),
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          [TIMESTAMP_HEADER]: timestamp,
          [SIGNATURE_HEADER]: sign(secret, timestamp, body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_REPLY_BYTES) chunks.push(chunk);
        });
        res.on('error', () =>
          resolve(signal.aborted ? timeout('processor did not answer in time') : crash('reply interrupted')),
        );
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          if (size > MAX_REPLY_BYTES) return resolve(crash('reply too large'));
          if (status >= 200 && status < 300) {
            if (text.trim() === '') return resolve({ status: 'reply', reply: null });
            try {
              return resolve({ status: 'reply', reply: JSON.parse(text) });
            } catch {
              return resolve(crash('2xx reply is not JSON'));
            }
          }
          if (status === 408 || status === 429 || status >= 500) return resolve(crash(`HTTP ${status}`));
          let message = `HTTP ${status}`;
          let code = `HTTP_${status}`;
          try {
            const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
            if (parsed.error?.message) message = parsed.error.message;
            if (parsed.error?.code) code = parsed.error.code;
          } catch {}
          resolve({ status: 'error', error: { kind: 'error', code, message }, retryable: false });
        });
      },
    );
    req.on('error', (error) =>
      resolve(signal.aborted ? timeout('processor did not answer in time') : crash(`network: ${error.message}`)),
    );
    req.end(body);
  });
}
