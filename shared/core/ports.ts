import type { Job } from './model.js';
import type { Processor } from './processors.js';
import type { TaskMessage } from './schemas.js';
import type { AttemptOutcome } from './transitions.js';

/**
 * What the engine needs from the outside world. `shared/aws/` implements these on DynamoDB, SQS,
 * S3, Lambda and HTTP; tests may implement them in memory.
 */

export interface JobStore {
  /** Writes a new job unless its id exists; then returns the existing job instead. */
  create(job: Job): Promise<{ created: true } | { created: false; existing: Job }>;
  /** A strongly consistent read; `undefined` for unknown or expired jobs. */
  get(id: string): Promise<Job | undefined>;
  /** Writes `job` only if the stored version is still `expectedVersion`; false when another write won. */
  replace(job: Job, expectedVersion: number): Promise<boolean>;
  /** Ids of unfinished jobs created before `createdBefore` (for the sweeper). */
  activeJobs(createdBefore: Date): AsyncIterable<string>;
}

export interface WorkQueue {
  /** Sends one message per task; batched by the adapter. */
  send(messages: TaskMessage[]): Promise<void>;
}

/** The `job` part of what a processor receives (API.md). */
export interface ProcessorJobView {
  id: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
}

export interface TaskRequest {
  job: ProcessorJobView;
  task: { id: string; name?: string; processor: string; attempt: number; input: unknown };
}

export interface ProcessorInvoker {
  /** Calls the processor and classifies its answer; never throws for processor failures. */
  invoke(processor: Processor, request: TaskRequest, signal: AbortSignal): Promise<AttemptOutcome>;
}

/** Large task inputs and results live in S3 behind a reference; API users only ever see values. */
export interface PayloadStore {
  resolve(value: unknown): Promise<unknown>;
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
