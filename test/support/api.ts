import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/protocols';
import { SignatureV4 } from '@smithy/signature-v4';
import { LOCAL_REGION } from '../../local/cloud.js';
import type { LocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import type { JobView } from '../../shared/core/view.js';
import { answerChecker } from './openapi.js';

export interface Reply<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * How a client proves who it is: extra headers for a request (a local owner's name, a SigV4
 * signature, a bearer token). Without one, the local stack takes requests as its default owner.
 */
export type Credentials = (request: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
}) => Promise<Record<string, string>> | Record<string, string>;

/** Acts as the local principal `name` (the local gateway's `X-Local-Owner`, no signature). */
export const localOwner =
  (name: string): Credentials =>
  () => ({ 'x-local-owner': name });

/** Signs every request with SigV4 as the given IAM credentials, exactly as an AWS SDK would. */
export const sigv4 =
  (credentials: { accessKeyId: string; secretAccessKey: string }, region = LOCAL_REGION): Credentials =>
  async ({ method, url, headers, body }) => {
    const query: Record<string, string[]> = {};
    for (const [name, value] of url.searchParams) query[name] = [...(query[name] ?? []), value];
    const signer = new SignatureV4({ credentials, region, service: 'execute-api', sha256: Sha256 });
    const signed = await signer.sign(
      new HttpRequest({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        query,
        headers: { host: url.host, ...headers },
        ...(body !== undefined ? { body } : {}),
      }),
    );
    const { host: _host, ...signedHeaders } = signed.headers;
    return signedHeaders;
  };

/** Sends a bearer token (JWT mode). */
export const bearer =
  (token: string): Credentials =>
  () => ({ authorization: `Bearer ${token}` });

/** Every answer a test gets through `apiClient` must be one docs/openapi.json allows, by route and status. */
let checkAnswer: ReturnType<typeof answerChecker> | undefined;

/**
 * A small client of the public HTTP API, as another service would use it. An answer the OpenAPI
 * document does not allow fails the call (and so the test), whatever the test itself expected.
 */
export function apiClient(stack: LocalStack, credentials?: Credentials) {
  const base = stack.info.api;
  const call = async <T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply<T>> => {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const sent = body === undefined ? { ...headers } : { 'content-type': 'application/json', ...headers };
    const url = new URL(`${base}${path}`);
    Object.assign(sent, await credentials?.({ method, url, headers: sent, body: text }));
    const response = await fetch(url, { method, headers: sent, body: text });
    const reply = await response.text();
    const parsed = reply ? JSON.parse(reply) : undefined;
    checkAnswer ??= answerChecker();
    const mismatch = checkAnswer(method, url.pathname, response.status, parsed);
    if (mismatch) {
      throw new Error(`The answer to ${method} ${path} is not the one docs/openapi.json documents: ${mismatch}
${reply.slice(0, 2000)}`);
    }
    return { status: response.status, headers: response.headers, body: parsed as T };
  };
  return {
    call,
    submit: <T = JobView>(body: unknown, headers?: Record<string, string>) =>
      call<T>('POST', '/v1/jobs', body, headers),
    get: <T = JobView>(id: string, wait?: number) =>
      call<T>('GET', `/v1/jobs/${id}${wait === undefined ? '' : `?wait=${wait}`}`),
    abort: (id: string) => call<JobView>('POST', `/v1/jobs/${id}/abort`),
    /** Submits and long-polls until the job is terminal (or fails the test after `seconds`). */
    async run(body: unknown, seconds = 30): Promise<JobView> {
      const submitted = await this.submit(body);
      if (submitted.status !== 202)
        throw new Error(`submit answered ${submitted.status}: ${JSON.stringify(submitted.body)}`);
      return this.waitFor(submitted.body.id, seconds);
    },
    async waitFor(id: string, seconds = 30): Promise<JobView> {
      const until = Date.now() + seconds * 1000;
      for (;;) {
        const { body } = await this.get(id, 5);
        if (['SUCCEEDED', 'FAILED', 'ABORTED'].includes(body.status) || Date.now() > until) return body;
      }
    },
  };
}

/** Everything in the jobs table: lets a test prove a refused request wrote nothing. */
export async function tableItems(stack: LocalStack): Promise<Record<string, unknown>[]> {
  const { doc } = createClients();
  try {
    // Every page: a Scan answers at most 1 MB at a time.
    const items: Record<string, unknown>[] = [];
    let cursor: Record<string, unknown> | undefined;
    do {
      const page = await doc.send(new ScanCommand({ TableName: stack.info.tables.jobs, ExclusiveStartKey: cursor }));
      items.push(...(page.Items ?? []));
      cursor = page.LastEvaluatedKey;
    } while (cursor);
    return items;
  } finally {
    doc.destroy();
  }
}

/** Messages on a queue, visible or in flight. */
export async function queueDepth(stack: LocalStack, queue: keyof LocalStack['info']['queues']): Promise<number> {
  const { sqs } = createClients();
  try {
    const { Attributes = {} } = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: stack.info.queues[queue]?.url,
        AttributeNames: ['ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessages'],
      }),
    );
    // The embedded SQS counts in-flight messages in ApproximateNumberOfMessages too; take the larger.
    return Math.max(
      Number(Attributes.ApproximateNumberOfMessages),
      Number(Attributes.ApproximateNumberOfMessagesNotVisible),
    );
  } finally {
    sqs.destroy();
  }
}
