/**
 * Waits (real time, a few milliseconds a look) until `check` holds: for what an engine does on a
 * timer of its own, such as writing a long run's start. Fails after `timeoutMs`.
 */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 1000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
