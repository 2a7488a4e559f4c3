import type { ChunkCommit, Tally } from '../../../shared/core/batches/model.js';
import { tallyOfChunk } from '../../../shared/core/batches/rules.js';
import type { Clock, TallyStore } from '../../../shared/core/ports.js';
import { systemClock } from '../../../shared/core/ports.js';

/**
 * The TallyStore port in memory, with the DynamoDB adapter's promises: a chunk commits once (a
 * second commit of it is refused, unless it is the same commit again: a retried write of ours), no
 * chunk commits into a closed group, and tallies come out as copies.
 */
export class MemoryTallyStore implements TallyStore {
  private readonly tallies = new Map<string, Tally>();

  constructor(private readonly clock: Clock = systemClock) {}

  async commit(
    jobId: string,
    chunk: number,
    commit: ChunkCommit,
  ): Promise<{ committed: true; tally: Tally } | { committed: false }> {
    const group = tallyOfChunk(chunk);
    const at = this.clock.now().toISOString();
    const tally: Tally = this.tallies.get(key(jobId, group)) ?? { group, commits: new Map(), closed: false };
    if (tally.closed || tally.commits.has(chunk)) {
      const found = tally.commits.get(chunk);
      return found?.token === commit.token ? { committed: true, tally: structuredClone(tally) } : { committed: false };
    }
    tally.commits.set(chunk, { ...commit });
    tally.firstAt ??= at;
    tally.lastAt = at;
    this.tallies.set(key(jobId, group), tally);
    return { committed: true, tally: structuredClone(tally) };
  }

  async read(jobId: string, group: number): Promise<Tally | undefined> {
    const tally = this.tallies.get(key(jobId, group));
    return tally && structuredClone(tally);
  }

  async all(jobId: string): Promise<Tally[]> {
    const prefix = `${jobId}#`;
    return [...this.tallies]
      .filter(([name]) => name.startsWith(prefix))
      .map(([, tally]) => structuredClone(tally))
      .sort((a, b) => a.group - b.group);
  }

  async close(jobId: string, groups: number): Promise<void> {
    for (let group = 0; group < groups; group++) {
      const tally = this.tallies.get(key(jobId, group)) ?? { group, commits: new Map(), closed: false };
      tally.closed = true;
      this.tallies.set(key(jobId, group), tally);
    }
  }
}

function key(jobId: string, group: number): string {
  return `${jobId}#${group}`;
}
