import { isPayloadOf, payloadPrefix } from '../../../shared/core/keys.js';
import type { PayloadStore } from '../../../shared/core/ports.js';

/**
 * The PayloadStore port in memory: values behind references, followed only inside their own job's
 * prefix (the adapter's rule itself, so the two cannot drift apart). A reference whose value is gone
 * reads as the adapter reads an expired object.
 */
export class MemoryPayloadStore implements PayloadStore {
  private readonly values = new Map<string, string>();
  /** Every reference loaded, in order. */
  readonly loads: string[] = [];

  async load(ref: string, jobId: string): Promise<unknown> {
    if (!isPayloadOf(ref, jobId)) throw new Error(`payload reference ${ref.slice(0, 200)} is not one of job ${jobId}`);
    this.loads.push(ref);
    const text = this.values.get(ref);
    if (text === undefined) return { expired: true, message: 'this value was stored in S3 and has expired' };
    return JSON.parse(text);
  }

  /** Keeps `value` under job `jobId`'s prefix and returns its reference (what a store would keep). */
  offload(jobId: string, name: string, value: unknown): string {
    const ref = `${payloadPrefix(jobId)}${name}.json`;
    this.values.set(ref, JSON.stringify(value));
    return ref;
  }

  /** Forgets a value, as the bucket's lifecycle would. */
  expire(ref: string): void {
    this.values.delete(ref);
  }
}
