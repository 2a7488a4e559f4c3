import { describe, expect, it } from 'vitest';
import { resources, VISIBILITY_PER_FUNCTION_TIMEOUT } from '../../shared/resources.js';

describe('resource declaration', () => {
  it('gives every queue fed to a function a visibility timeout ≥ 6× that function’s timeout', () => {
    for (const source of resources.eventSources) {
      const queue = resources.queues[source.queue];
      const fn = resources.functions[source.function];
      expect(queue.visibilityTimeoutSeconds).toBeGreaterThanOrEqual(
        VISIBILITY_PER_FUNCTION_TIMEOUT * fn.timeoutSeconds,
      );
      expect(source.batchSize).toBeLessThanOrEqual(10);
    }
  });

  it('gives every working queue a declared dead-letter queue with maxReceiveCount ≥ 5', () => {
    const names = Object.keys(resources.queues);
    for (const [key, queue] of Object.entries(resources.queues)) {
      if (key.endsWith('Dlq')) continue;
      expect('deadLetter' in queue, `${key} has a DLQ`).toBe(true);
      if (!('deadLetter' in queue)) continue;
      expect(names).toContain(queue.deadLetter.queue);
      expect(queue.deadLetter.maxReceiveCount).toBeGreaterThanOrEqual(5);
    }
  });

  it('names indexes with at least 3 characters and routes only to declared functions', () => {
    for (const table of Object.values(resources.tables)) {
      for (const index of table.indexes as { name: string }[]) expect(index.name.length).toBeGreaterThanOrEqual(3);
    }
    expect(Object.keys(resources.functions)).toContain(resources.api.function);
    for (const schedule of Object.values(resources.schedules)) {
      expect(Object.keys(resources.functions)).toContain(schedule.function);
    }
  });
});
