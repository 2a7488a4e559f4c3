import { isTerminal } from '../model.js';
import { type BatchContext, sendStep } from './context.js';
import { sumTallies } from './rules.js';

/**
 * The sweeper's pass over one batch: re-sends the step a lost message would have taken. Answers
 * whether it sent one.
 */
export async function sweepOne(ctx: BatchContext, id: string, graceSeconds: number): Promise<boolean> {
  const { store, tallies, clock } = ctx.deps;
  const job = await store.read(id);
  if (job?.kind !== 'batch' || job.status === 'HELD' || job.batch.outputs) return false;
  const idleMs = clock.now().getTime() - Date.parse(job.updatedAt);
  if (isTerminal(job.status) || job.batch.abortRequestedAt) {
    await sendStep(ctx, id, 'finalize');
    return true;
  }
  if (idleMs < graceSeconds * 1000) return false;
  const plan = job.batch.plan;
  if (plan && sumTallies(await tallies.all(id)).chunks === plan.chunks) {
    await sendStep(ctx, id, 'finalize');
    return true;
  }
  if (!plan || job.batch.parts.length > 0) {
    // Planning again re-sends every chunk not committed (a duplicate commits nothing twice).
    await sendStep(ctx, id, 'plan');
    return true;
  }
  return false;
}
