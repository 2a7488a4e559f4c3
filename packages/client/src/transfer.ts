import { TransferError } from './errors.js';
import type { Transport } from './http.js';

/** What `upload` takes: the file's bytes, whole or as a stream (a Node `Readable` is an async iterable). */
export type UploadData =
  | Blob
  | ArrayBuffer
  | ArrayBufferView
  | string
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

export interface UploadProgress {
  /** Bytes sent so far. */
  loaded: number;
  total: number;
}

export interface UploadOptions {
  onProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
  /**
   * A stream's length in bytes. S3 takes a presigned PUT only with a Content-Length, so a stream
   * of unknown size is read into memory first; give its size (or use `fileData` of the `./node`
   * entry for a file) to send it as it is read.
   */
  size?: number;
}

/** What `upload` needs of a job: the upload URL its submit reply carries. */
export interface Uploadable {
  id?: string;
  batch?: { upload?: { url: string; method?: string } };
}

/** A stream's bytes as they are read, counted. */
function counted(stream: ReadableStream<Uint8Array>, onBytes: (n: number) => void): ReadableStream<Uint8Array> {
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onBytes(chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
}

function toStream(data: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  if (data instanceof ReadableStream) return data;
  const iterator = data[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value instanceof Uint8Array ? value : new TextEncoder().encode(String(value)));
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}

const isStream = (data: UploadData): data is ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> =>
  data instanceof ReadableStream || (typeof data === 'object' && data !== null && Symbol.asyncIterator in data);

function toBlob(data: Exclude<UploadData, ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>>): Blob {
  if (data instanceof Blob) return data;
  return new Blob([data as BlobPart]);
}

/** S3 answers an error in XML: its `<Code>` and `<Message>`, read without an XML parser. */
async function transferError(response: Response, what: string): Promise<TransferError> {
  const text = await response.text().catch(() => '');
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `HTTP_${response.status}`;
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? text.slice(0, 200);
  return new TransferError(
    response.status,
    code,
    `${what} failed: ${response.status} ${code}${message ? `: ${message}` : ''}`,
  );
}

/** A browser: XMLHttpRequest is the one way it reports upload progress (fetch has no upload events). */
interface Xhr {
  open(method: string, url: string): void;
  send(body: Blob): void;
  abort(): void;
  status: number;
  responseText: string;
  upload: { onprogress: ((event: { loaded: number }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}

function xhrPut(url: string, blob: Blob, options: UploadOptions): Promise<Response> {
  const Xhr = (globalThis as unknown as { XMLHttpRequest: new () => Xhr }).XMLHttpRequest;
  return new Promise((resolve, reject) => {
    const xhr = new Xhr();
    const { signal, onProgress } = options;
    const onAbort = () => xhr.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (done: () => void) => () => {
      signal?.removeEventListener('abort', onAbort);
      done();
    };
    xhr.open('PUT', url);
    if (onProgress) xhr.upload.onprogress = (event) => onProgress({ loaded: event.loaded, total: blob.size });
    xhr.onload = settle(() => resolve(new Response(xhr.responseText || null, { status: xhr.status })));
    // What fetch does when no reply came: a TypeError, which the retries know.
    xhr.onerror = settle(() => reject(new TypeError('upload failed: network error')));
    xhr.onabort = settle(() => reject(signal?.reason ?? new DOMException('aborted', 'AbortError')));
    xhr.send(blob);
  });
}

/**
 * PUTs a batch's input file to its presigned URL. Whole data (a Blob, bytes, a string) is retried
 * like an API call; a stream can be sent once only, so a failure there is the caller's to retry.
 */
export async function upload(
  transport: Transport,
  job: Uploadable | string,
  data: UploadData,
  options: UploadOptions = {},
): Promise<void> {
  const url = typeof job === 'string' ? job : job.batch?.upload?.url;
  if (!url) {
    throw new TypeError(
      `Job ${typeof job === 'string' ? '' : (job.id ?? '')} has no upload URL: submit the batch with upload: true, and upload while it is HELD`,
    );
  }
  const { onProgress, signal } = options;
  const browser = typeof (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest === 'function';
  const put = (body: BodyInit, size: number) =>
    transport.fetch(
      url,
      { method: 'PUT', body, headers: { 'content-length': String(size) }, duplex: 'half' } as RequestInit,
      signal,
    );
  const progress = (stream: ReadableStream<Uint8Array>, total: number) => {
    let loaded = 0;
    return counted(stream, (n) => {
      loaded += n;
      onProgress?.({ loaded, total });
    });
  };
  let response: Response;
  if (isStream(data) && options.size !== undefined && !browser) {
    response = await transport.retrying(
      () => put(progress(toStream(data), options.size!), options.size!),
      signal,
      true,
    );
  } else {
    // A browser cannot stream a request body to S3 (HTTP/1.1, no chunked PUT): it sends a Blob.
    const blob = isStream(data) ? await new Response(toStream(data)).blob() : toBlob(data);
    response = await transport.retrying(
      () =>
        browser ? xhrPut(url, blob, options) : put(onProgress ? progress(blob.stream(), blob.size) : blob, blob.size),
      signal,
    );
  }
  if (!response.ok) throw await transferError(response, 'upload');
  await response.arrayBuffer().catch(() => undefined);
}

/** An output's bytes as a stream (its presigned URL, from `batch.outputs[name]`). */
export async function download(
  transport: Transport,
  output: { url: string } | string,
  options: { signal?: AbortSignal } = {},
): Promise<ReadableStream<Uint8Array>> {
  const url = typeof output === 'string' ? output : output.url;
  const response = await transport.retrying(
    () => transport.fetch(url, { method: 'GET' }, options.signal),
    options.signal,
  );
  if (!response.ok || !response.body) throw await transferError(response, 'download');
  return response.body;
}
