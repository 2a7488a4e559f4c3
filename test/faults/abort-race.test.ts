import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { apiClient } from '../support/api.js';
import { startTestStack } from '../support/stack.js';

/**
 * Abort racing completion (issue 9's fault suite): many short jobs, each aborted at a random
 * moment. Exactly one terminal outcome per job, agreeing with what the abort answered, and no task
 * started after the abort was committed.
 */
describe('abort racing completion', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  it('gives every job one final outcome that the abort reply agrees with', async () => {
    const api = apiClient(stack);
    const trials = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const { body } = await api.submit({
          type: 'race',
          tasks: [
            { processor: 'demo.sleep', input: { ms: (i * 37) % 300 } },
            { processor: 'demo.echo', input: i },
          ],
        });
        await new Promise((r) => setTimeout(r, (i * 53) % 500));
        const abort = await api.abort(body.id);
        return { abort, final: await api.waitFor(body.id, 30) };
      }),
    );
    let aborted = 0;
    for (const { abort, final } of trials) {
      if (abort.status === 202) {
        aborted++;
        expect(final.status).toBe('ABORTED');
        expect(final.endedAt).toBe(abort.body.endedAt);
      } else {
        // The job had already finished: the abort is refused and changes nothing.
        expect(abort.status).toBe(409);
        expect(final.status).toBe('SUCCEEDED');
      }
      for (const task of final.tasks) {
        if (task.startedAt) expect(Date.parse(task.startedAt)).toBeLessThanOrEqual(Date.parse(final.endedAt as string));
      }
      expect(final.counts.total).toBe(final.counts.succeeded + final.counts.failed + final.counts.aborted);
    }
    console.log(
      `abort race: ${trials.length} trials, ${aborted} aborted, ${trials.length - aborted} completed first, 0 violations`,
    );
  }, 120_000);
});
