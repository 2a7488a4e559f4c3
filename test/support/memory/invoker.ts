import type { ChunkCall, ChunkRequest, ProcessorInvoker, TaskRequest } from '../../../shared/core/ports.js';
import type { Processor } from '../../../shared/core/processors.js';
import type { AttemptOutcome } from '../../../shared/core/tasks/transitions.js';

/**
 * What one call of the processor does:
 * - an outcome (for a task) or a chunk call (for a chunk): answered at once;
 * - `{ throws }`: the invoker throws (it never should; the engines must survive it);
 * - `{ hang: true }`: no answer until the call's signal aborts (a deadline, the worker's end), then
 *   the answer an interrupted call gets (`onAbort`, by default a retryable crash, as a network
 *   error would be: the engine decides whether it was a timeout);
 * - `{ gate }`: no answer until the test opens the gate with `gate.open(reply)`;
 * - a function of the request: computed per call.
 */
export type Reply<Req, Res> =
  | Res
  | { throws: unknown }
  | { hang: true; onAbort?: Res }
  | { gate: Gate<Res> }
  | ((request: Req, call: number) => Res | Promise<Res>);

export type TaskReply = Reply<TaskRequest, AttemptOutcome>;
export type ChunkReply = Reply<ChunkRequest, ChunkCall>;

/** A reply the test releases when it chooses (a slow processor, a zombie's late answer). */
export class Gate<Res> {
  private release: ((reply: Res) => void) | undefined;
  private readonly opened: Promise<Res>;
  /** Resolves once the call waiting on this gate has begun. */
  readonly entered: Promise<void>;
  private enter: () => void = () => {};

  constructor() {
    this.opened = new Promise<Res>((resolve) => (this.release = resolve));
    this.entered = new Promise<void>((resolve) => (this.enter = resolve));
  }

  open(reply: Res): void {
    this.release?.(reply);
  }

  /** @internal the invoker waits here. */
  wait(): Promise<Res> {
    this.enter();
    return this.opened;
  }
}

/** A call as the invoker received it. */
export interface Call<Req> {
  processor: string;
  request: Req;
  signal: AbortSignal;
}

const interrupted: AttemptOutcome = {
  status: 'error',
  error: { kind: 'crash', message: 'call aborted' },
  retryable: true,
};
const interruptedChunk: ChunkCall = interrupted as ChunkCall;

/**
 * A scripted ProcessorInvoker: each processor (by name) answers its calls with the replies queued
 * for it, in order, and with its default once they run out (a task succeeds with its input as the
 * result; a chunk's rows all succeed with theirs). Every call is recorded with its request and signal.
 */
export class ScriptedInvoker implements ProcessorInvoker {
  readonly calls: Call<TaskRequest>[] = [];
  readonly chunkCalls: Call<ChunkRequest>[] = [];
  private readonly tasks = new Map<string, TaskReply[]>();
  private readonly chunks = new Map<string, ChunkReply[]>();
  private readonly taskDefaults = new Map<string, TaskReply>();
  private readonly chunkDefaults = new Map<string, ChunkReply>();

  /** Queues replies to the next calls of `processor`'s tasks. */
  reply(processor: string, ...replies: TaskReply[]): this {
    this.tasks.set(processor, [...(this.tasks.get(processor) ?? []), ...replies]);
    return this;
  }

  /** Queues replies to the next chunk calls of `processor`. */
  replyChunk(processor: string, ...replies: ChunkReply[]): this {
    this.chunks.set(processor, [...(this.chunks.get(processor) ?? []), ...replies]);
    return this;
  }

  /** What `processor`'s task calls get once its queued replies are used up. */
  otherwise(processor: string, reply: TaskReply): this {
    this.taskDefaults.set(processor, reply);
    return this;
  }

  otherwiseChunk(processor: string, reply: ChunkReply): this {
    this.chunkDefaults.set(processor, reply);
    return this;
  }

  async invoke(processor: Processor, request: TaskRequest, signal: AbortSignal): Promise<AttemptOutcome> {
    this.calls.push({ processor: processor.name, request: structuredClone(request), signal });
    const reply: TaskReply =
      this.tasks.get(processor.name)?.shift() ??
      this.taskDefaults.get(processor.name) ??
      ((r: TaskRequest) => ({ status: 'ok' as const, result: r.task.input }));
    return answer<TaskRequest, AttemptOutcome>(reply, request, this.calls.length, signal, interrupted);
  }

  async invokeChunk(processor: Processor, request: ChunkRequest, signal: AbortSignal): Promise<ChunkCall> {
    this.chunkCalls.push({ processor: processor.name, request: structuredClone(request), signal });
    const reply: ChunkReply =
      this.chunks.get(processor.name)?.shift() ??
      this.chunkDefaults.get(processor.name) ??
      ((r: ChunkRequest) => ({
        status: 'reply' as const,
        reply: { rows: r.chunk.rows.map(({ line, input }) => ({ line, status: 'ok', result: input })) },
      }));
    return answer<ChunkRequest, ChunkCall>(reply, request, this.chunkCalls.length, signal, interruptedChunk);
  }
}

async function answer<Req, Res>(
  reply: Reply<Req, Res>,
  request: Req,
  call: number,
  signal: AbortSignal,
  onAbort: Res,
): Promise<Res> {
  if (typeof reply === 'function') return (reply as (r: Req, n: number) => Res | Promise<Res>)(request, call);
  if (reply && typeof reply === 'object') {
    if ('throws' in reply) throw reply.throws;
    if ('hang' in reply) {
      return new Promise<Res>((resolve) => {
        const stop = () => resolve(reply.onAbort ?? onAbort);
        if (signal.aborted) stop();
        else signal.addEventListener('abort', stop, { once: true });
      });
    }
    if ('gate' in reply && reply.gate instanceof Gate) return reply.gate.wait();
  }
  return structuredClone(reply as Res);
}
