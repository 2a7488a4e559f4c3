import { Meter, type Usage } from '../shared/aws/meter.js';

/**
 * What every bench scenario prices: the system's own usage, without the calls of the user's code
 * (the processors' Lambda invocations, named by `users`), and as billed — the event sources' empty
 * receives left out, since idle polling is AWS's pollers' business (a monthly figure, see README),
 * not a per-job cost.
 */
export function systemUsage(
  meter: Meter,
  users: (operation: string) => boolean,
): { byOperation: Record<string, Usage>; usage: Usage; billed: Usage } {
  const byOperation = Object.fromEntries(Object.entries(meter.byOperation()).filter(([op]) => !users(op)));
  const system = new Meter();
  for (const [op, usage] of Object.entries(byOperation)) system.add(op, usage);
  const usage = system.total();
  return { byOperation, usage, billed: { ...usage, sqsRequests: usage.sqsRequests - usage.emptyReceives } };
}

/** The value below which `p` percent of `sorted` lie (0 for none). */
export function percentile(sorted: number[], p: number): number {
  return sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number) : 0;
}
