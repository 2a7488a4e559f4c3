import { InvokeCommand, LambdaClient, ResourceNotFoundException } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { eventually, startTestStack } from '../../support/stack.js';

let stack: LocalStack;
let lambda: LambdaClient;
const asyncCalls: unknown[] = [];

beforeAll(async () => {
  stack = await startTestStack({
    extraFunctions: [
      {
        name: 'adder',
        timeoutSeconds: 1,
        memoryMb: 128,
        handler: async (event: { a: number; b: number; mode?: string }) => {
          if (event.mode === 'throw') throw new TypeError('cannot add');
          if (event.mode === 'hang') await new Promise((r) => setTimeout(r, 1500));
          if (event.mode === 'async') asyncCalls.push(event);
          return { sum: event.a + event.b };
        },
      },
    ],
  });
  // The stack points AWS_ENDPOINT_URL_LAMBDA at its Invoke endpoint: a plain client finds it.
  lambda = new LambdaClient({});
});

afterAll(async () => {
  lambda?.destroy();
  await stack?.stop();
});

const decode = (payload?: Uint8Array) => JSON.parse(Buffer.from(payload ?? []).toString('utf8'));

describe('local Lambda Invoke endpoint', () => {
  it('lets InvokeCommand reach a local function and read its result', async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: 'adder', Payload: Buffer.from(JSON.stringify({ a: 2, b: 3 })) }),
    );
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBeUndefined();
    expect(decode(out.Payload)).toEqual({ sum: 5 });
  });

  it('accepts a function ARN', async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: stack.host.arn('adder'), Payload: Buffer.from('{"a":1,"b":1}') }),
    );
    expect(decode(out.Payload)).toEqual({ sum: 2 });
  });

  it('reports a throw as FunctionError Unhandled with the error payload', async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: 'adder', Payload: Buffer.from('{"mode":"throw"}') }),
    );
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBe('Unhandled');
    expect(decode(out.Payload)).toMatchObject({ errorType: 'TypeError', errorMessage: 'cannot add' });
  });

  it('reports a timeout as Sandbox.Timedout', async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: 'adder', Payload: Buffer.from('{"mode":"hang"}') }),
    );
    expect(out.FunctionError).toBe('Unhandled');
    expect(decode(out.Payload).errorType).toBe('Sandbox.Timedout');
  });

  it('answers 202 to an Event invocation and runs it', async () => {
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: 'adder',
        InvocationType: 'Event',
        Payload: Buffer.from('{"mode":"async","a":1,"b":2}'),
      }),
    );
    expect(out.StatusCode).toBe(202);
    await eventually(async () => asyncCalls.length === 1);
  });

  it('throws ResourceNotFoundException for an unknown function', async () => {
    await expect(lambda.send(new InvokeCommand({ FunctionName: 'nope' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });
});

describe('local Lambda sandboxes', () => {
  it('never hands one sandbox two invocations at once, as Lambda does not', async () => {
    const { FunctionHost } = await import('../../../local/runtime/functions.js');
    const host = new FunctionHost('us-east-1');
    let instances = 0;
    let overlaps = 0;
    host.register({
      name: 'stateful',
      timeoutSeconds: 5,
      memoryMb: 128,
      // Each load is a new module instance with its own state, like a handler's module scope.
      load: async () => {
        instances++;
        let busy = false;
        return async () => {
          if (busy) overlaps++;
          busy = true;
          await new Promise((r) => setTimeout(r, 20));
          busy = false;
          return 'ok';
        };
      },
    });
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => host.invoke('stateful', {})));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(overlaps).toBe(0);
    expect(instances).toBe(8);
    // Warm sandboxes are reused afterwards.
    await Promise.all(Array.from({ length: 8 }, () => host.invoke('stateful', {})));
    expect(host.sandboxCount('stateful')).toBe(8);
  });
});
