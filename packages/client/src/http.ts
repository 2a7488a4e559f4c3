import type { Auth, SignRequest } from './auth.js';
import { errorOf } from './errors.js';

export type { Auth, AwsCredentials } from './auth.js';

/** Retries of one call: on 5xx, 429 and network failures, after a full-jitter backoff. */
export interface RetryOptions {
  /** Retries after the first try (default 3; 0 turns retries off). */
  attempts?: number;
  /** The first backoff's ceiling; each retry doubles it (default 100 ms). */
  baseDelayMs?: number;
  /** No backoff, nor a server's `Retry-After`, waits longer than this (default 2000 ms). */
  maxDelayMs?: number;
}

export interface TransportOptions {
  endpoint: string;
  auth?: Auth;
  fetch?: typeof globalThis.fetch;
  retries?: number | RetryOptions;
}

export interface CallOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Told of each try as it starts (1, 2, …). */
  onTry?: (tries: number) => void;
}

const RETRYABLE_STATUS = (status: number) => status === 429 || status >= 500;

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** fetch rejects with a TypeError when no reply came at all (refused, reset, DNS); an abort is a DOMException. */
const isNetworkError = (error: unknown) => error instanceof TypeError;

/** `Retry-After` in seconds or as a date, in ms from now. */
function retryAfterMs(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * Sends the API's requests: signs or authorizes each try, retries what may succeed on a later
 * try, and turns every error reply into the JobsApiError of its code.
 */
export class Transport {
  private readonly base: string;
  private readonly fetcher: typeof globalThis.fetch;
  private readonly retry: Required<RetryOptions>;
  private signer: Promise<SignRequest> | undefined;

  constructor(private readonly options: TransportOptions) {
    this.base = options.endpoint.replace(/\/+$/, '');
    // Unbound, a browser's fetch throws "Illegal invocation".
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
    const retries = typeof options.retries === 'number' ? { attempts: options.retries } : (options.retries ?? {});
    this.retry = {
      attempts: retries.attempts ?? 3,
      baseDelayMs: retries.baseDelayMs ?? 100,
      maxDelayMs: retries.maxDelayMs ?? 2000,
    };
  }

  url(path: string, query: CallOptions['query'] = {}): URL {
    const url = new URL(`${this.base}${path}`);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.append(name, String(value));
    }
    return url;
  }

  /** The backoff before retry `n` (0-based): uniform in [0, min(max, base·2ⁿ)], or the server's Retry-After. */
  backoff(n: number, retryAfter?: number): number {
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** n);
    return retryAfter !== undefined ? Math.min(retryAfter, this.retry.maxDelayMs) : Math.random() * ceiling;
  }

  /** One try of a request, with the client's fetch. */
  fetch(url: string | URL, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    return this.fetcher(url, { ...init, ...(signal ? { signal } : {}) });
  }

  /**
   * Tries `attempt` until it answers a reply not worth retrying (whatever its status), retrying
   * 5xx, 429 and network failures; `once` makes a single try (a body that cannot be sent twice).
   */
  async retrying(attempt: () => Promise<Response>, signal?: AbortSignal, once = false): Promise<Response> {
    const most = once ? 0 : this.retry.attempts;
    for (let n = 0; ; n++) {
      let response: Response;
      try {
        response = await attempt();
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (n >= most || !isNetworkError(error)) throw error;
        await sleep(this.backoff(n), signal);
        continue;
      }
      if (n >= most || !RETRYABLE_STATUS(response.status)) return response;
      // Read to the end: an unread body holds its connection open.
      await response.arrayBuffer().catch(() => undefined);
      await sleep(this.backoff(n, retryAfterMs(response.headers.get('retry-after'))), signal);
    }
  }

  /** One API call: JSON in, JSON out, an error reply thrown as its JobsApiError. */
  async call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const url = this.url(path, options.query);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    };
    const { signal, onTry } = options;
    let tries = 0;
    const response = await this.retrying(async () => {
      onTry?.(++tries);
      return this.fetch(url, { method, headers: await this.authorize(method, url, headers, body), body }, signal);
    }, signal);
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = { message: text.slice(0, 200) };
    }
    if (!response.ok) throw errorOf(response.status, json);
    return json as T;
  }

  /** The headers of one try: the caller's, plus what the auth mode adds. */
  private async authorize(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<Record<string, string>> {
    const auth = this.options.auth ?? { type: 'none' };
    if (auth.type === 'none') return auth.owner ? { ...headers, 'x-local-owner': auth.owner } : headers;
    if (auth.type === 'jwt') {
      const token = typeof auth.token === 'function' ? await auth.token() : auth.token;
      return { ...headers, authorization: `Bearer ${token}` };
    }
    // Its own chunk: browsers and JWT users never load the signer.
    this.signer ??= import('./sigv4.js').then(({ signer }) => signer(auth, this.base));
    const sign = await this.signer.catch((error) => {
      this.signer = undefined;
      throw error;
    });
    return sign({ method, url, headers, body });
  }
}
