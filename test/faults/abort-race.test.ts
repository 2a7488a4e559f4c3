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
    // Two anchors that cannot race, so the check below could tell either outcome from the other:
    // an abort while the first task sleeps for seconds must win, and one after the job ended must
    // be refused. Between them, 24 jobs aborted at moments spread across their run.
    const anchors = async (mode: 'abort-first' | 'complete-first') => {
      const { body } = await api.submit({
        type: 'race-anchor',
        tasks: [
          { processor: 'demo.sleep', input: { ms: mode === 'abort-first' ? 5000 : 0 } },
          { processor: 'demo.echo', input: mode },
        ],
      });
      if (mode === 'complete-first') await api.waitFor(body.id, 30);
      const abort = await api.abort(body.id);
      return { abort, final: await api.waitFor(body.id, 30), mode };
    };
    const racing = Array.from({ length: 24 }, async (_, i) => {
      const { body } = await api.submit({
        type: 'race',
        tasks: [
          { processor: 'demo.sleep', input: { ms: (i * 37) % 300 } },
          { processor: 'demo.echo', input: i },
        ],
      });
      // Spread over four seconds (a job here takes about two): later aborts meet finished jobs.
      await new Promise((r) => setTimeout(r, (i * 173) % 4000));
      const abort = await api.abort(body.id);
      return { abort, final: await api.waitFor(body.id, 30), mode: 'race' as const };
    });
    const trials = await Promise.all([anchors('abort-first'), anchors('complete-first'), ...racing]);
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
    // Both ways, for certain: the anchors' outcomes are fixed by their design, not by timing.
    expect(trials.map(({ mode, final }) => [mode, final.status]).slice(0, 2)).toEqual([
      ['abort-first', 'ABORTED'],
      ['complete-first', 'SUCCEEDED'],
    ]);
    const raced = trials.slice(2);
    const racedAborted = raced.filter((t) => t.abort.status === 202).length;
    console.log(
      `abort race: ${raced.length} racing trials, ${racedAborted} aborted, ${raced.length - racedAborted} completed first, 0 violations (${aborted} aborts in all)`,
    );
  }, 120_000);
});
