import { describe, expect, it } from 'vitest';
import { FunctionHost } from '../../../local/runtime/functions.js';
import { RateSchedule } from '../../../local/runtime/schedules.js';

describe('rate schedules', () => {
  it('invokes the function with an EventBridge scheduled event and never overlaps runs', async () => {
    const host = new FunctionHost('us-east-1');
    const events: { 'detail-type': string; source: string }[] = [];
    let release: () => void = () => {};
    host.register({
      name: 'sweeper',
      timeoutSeconds: 5,
      memoryMb: 128,
      handler: async (event) => {
        events.push(event);
        await new Promise<void>((r) => (release = r));
      },
    });
    const schedule = new RateSchedule(host, 'sweep', 'sweeper', 60, 'us-east-1');
    const first = schedule.tick();
    await schedule.tick(); // due while the first run is still going: skipped
    release();
    await first;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ 'detail-type': 'Scheduled Event', source: 'aws.events' });
    const second = schedule.tick();
    await new Promise((r) => setTimeout(r, 10));
    release();
    await second;
    expect(events).toHaveLength(2);
  });
});
