import { Cursors } from '../../../shared/core/search.js';
import { ManualClock } from './clock.js';
import { MemoryBatchFiles } from './files.js';
import { ScriptedInvoker } from './invoker.js';
import { MemoryPayloadStore } from './payloads.js';
import { MemoryWorkQueue } from './queue.js';
import { MemoryJobStore, type MemoryJobStoreOptions } from './store.js';
import { MemoryTallyStore } from './tallies.js';

export { ManualClock } from './clock.js';
export { MemoryBatchFiles } from './files.js';
export { type Call, type ChunkReply, Gate, ScriptedInvoker, type TaskReply } from './invoker.js';
export { MemoryPayloadStore } from './payloads.js';
export { type Envelope, MemoryWorkQueue } from './queue.js';
export { MemoryJobStore } from './store.js';
export { MemoryTallyStore } from './tallies.js';
export { waitFor } from './wait.js';

/**
 * Every port of the core in memory, sharing one manual clock: what an engine needs to run a
 * scenario in a unit test, with no emulator. Each part is the fake of its port; see its file.
 */
export function memoryPorts(
  options: { start?: Date | string; store?: Omit<MemoryJobStoreOptions, 'clock'>; partBytes?: number } = {},
) {
  const clock = new ManualClock(options.start);
  return {
    clock,
    store: new MemoryJobStore({ ...options.store, clock }),
    queue: new MemoryWorkQueue(clock),
    tallies: new MemoryTallyStore(clock),
    files: new MemoryBatchFiles('memory-data', options.partBytes !== undefined ? { partBytes: options.partBytes } : {}),
    payloads: new MemoryPayloadStore(),
    invoker: new ScriptedInvoker(),
    cursors: new Cursors(async () => 'memory-cursor-key'),
  };
}

export type MemoryPorts = ReturnType<typeof memoryPorts>;
