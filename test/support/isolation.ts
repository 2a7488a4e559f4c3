import { expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { installMeter, Meter, uninstallMeter } from '../../shared/aws/meter.js';
import { ownerKey } from '../../shared/core/owners.js';
import { apiClient, type Credentials } from './api.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Reply = any;

/**
 * The clients of three principals (alice, bob, and root, the admin). The isolation scenarios run
 * once per way a caller proves who it is: the local owner header, real SigV4 signatures, JWTs.
 */
export function callers(stack: LocalStack, as: (name: string) => Credentials) {
  return {
    alice: apiClient(stack, as('alice')),
    bob: apiClient(stack, as('bob')),
    root: apiClient(stack, as('root')),
  };
}

/** What two owners (and an admin) must and must not be able to do to each other's jobs. */
export function twoOwners(clients: () => ReturnType<typeof callers>, ownerOf: (name: string) => string) {
  it("B cannot see, find, abort, append to, release, page rows of or replay into any of A's jobs", async () => {
    const { alice, bob } = clients();
    const sleeping = { type: 'report', tasks: [{ processor: 'demo.sleep', input: { ms: 3000 } }] };
    const task = await alice.submit<Reply>(sleeping, { 'idempotency-key': 'shared-key' });
    const held = await alice.submit<Reply>(
      { type: 'import', batch: { processor: 'demo.rows', hold: true, rows: [{ n: 1 }] } },
      { 'idempotency-key': 'held-key' },
    );
    const uploadBody = { type: 'import', batch: { processor: 'demo.rows', upload: true } };
    const upload = await alice.submit<Reply>(uploadBody, { 'idempotency-key': 'upload-key' });
    expect([task.status, held.status, upload.status]).toEqual([202, 202, 202]);
    const ids = [task.body.id, held.body.id, upload.body.id];

    for (const id of ids) {
      for (const [method, path, body] of [
        ['GET', `/v1/jobs/${id}`],
        ['GET', `/v1/jobs/${id}?wait=1`],
        ['GET', `/v1/jobs/${id}/events`],
        ['GET', `/v1/jobs/${id}/rows`],
        ['POST', `/v1/jobs/${id}/abort`],
        ['POST', `/v1/jobs/${id}/rows`, { rows: [{ n: 'bob' }] }],
        ['POST', `/v1/jobs/${id}/release`],
      ] as const) {
        const reply = await bob.call<Reply>(method, path, body);
        expect({ method, path, status: reply.status, code: reply.body.error?.code }).toEqual({
          method,
          path,
          status: 404,
          code: 'NOT_FOUND',
        });
        // Exactly what an id nobody has answers: nothing tells B the job exists.
        expect(reply.body.error.message).toBe(`No job ${id}`);
      }
    }

    // B replays A's visible bodies with A's keys: B gets jobs of its own, never A's (nor A's upload URL).
    const replayTask = await bob.submit<Reply>(sleeping, { 'idempotency-key': 'shared-key' });
    const replayUpload = await bob.submit<Reply>(uploadBody, { 'idempotency-key': 'upload-key' });
    expect([replayTask.status, replayUpload.status]).toEqual([202, 202]);
    expect(replayTask.body.id).not.toBe(task.body.id);
    expect(replayUpload.body.id).not.toBe(upload.body.id);
    expect(replayUpload.body.batch.upload.url).not.toContain(upload.body.id);
    // A's own replay still finds A's job.
    const again = await alice.submit<Reply>(uploadBody, { 'idempotency-key': 'upload-key' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(upload.body.id);

    // Nothing B did changed A's jobs.
    const heldNow = (await alice.get<Reply>(held.body.id)).body as Reply;
    expect(heldNow).toMatchObject({ status: 'HELD', counts: { total: 1 }, owner: ownerOf('alice') });
    expect(heldNow.idempotencyKey).toBe('held-key');
    expect((await alice.get<Reply>(task.body.id)).body.status).not.toBe('ABORTED');

    // B's searches list only B's jobs, and read no index entry of A's.
    const meter = new Meter();
    installMeter(meter);
    try {
      for (const query of ['', '?type=report', '?type=import&status=HELD', '?status=FAILED', '?meta.x=1']) {
        const page = await bob.call<Reply>('GET', `/v1/jobs${query}`);
        expect(page.status).toBe(200);
        for (const job of page.body.items) expect(job.owner).toBe(ownerOf('bob'));
      }
      const tasks = await bob.call<Reply>('GET', '/v1/tasks?processor=demo.sleep');
      expect(tasks.body.items.map((t: Reply) => t.jobId)).toEqual([replayTask.body.id]);
    } finally {
      uninstallMeter();
    }
    const bobKey = ownerKey(ownerOf('bob'));
    expect(meter.indexReads.length).toBeGreaterThan(0);
    for (const read of meter.indexReads) {
      expect(String(read.partition).startsWith(`${bobKey}#`)).toBe(true);
      for (const entry of read.items) expect(String(entry.sOwner ?? entry.sEnd).startsWith(`${bobKey}#`)).toBe(true);
    }
    // A's jobs are in the index all the same: A finds them.
    const mine = await alice.call<Reply>('GET', '/v1/jobs?type=import');
    expect(mine.body.items.map((j: Reply) => j.id).sort()).toEqual([held.body.id, upload.body.id].sort());

    // Naming another owner in a search is for admins only.
    const foreign = await bob.call<Reply>('GET', `/v1/jobs?owner=${encodeURIComponent(ownerOf('alice'))}`);
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details[0].path).toBe('owner');
  });

  it("an admin sees and finds every owner's jobs", async () => {
    const { alice, bob, root } = clients();
    const a = await alice.run({ type: 'audit', tasks: [{ processor: 'demo.echo', input: 'a' }] });
    const b = await bob.run({ type: 'audit', tasks: [{ processor: 'demo.echo', input: 'b' }] });
    expect((await root.get<Reply>(a.id)).body).toMatchObject({ id: a.id, owner: ownerOf('alice') });
    expect((await root.get<Reply>(b.id)).body).toMatchObject({ id: b.id, owner: ownerOf('bob') });
    for (const [name, id] of [
      ['alice', a.id],
      ['bob', b.id],
    ] as const) {
      const page = await root.call<Reply>('GET', `/v1/jobs?type=audit&owner=${encodeURIComponent(ownerOf(name))}`);
      expect(page.body.items.map((j: Reply) => j.id)).toContain(id);
    }
    // The key is its owner's alone: an admin reading the job does not get it.
    const keyed = await alice.submit<Reply>(
      { type: 'audit', tasks: [{ processor: 'demo.echo' }] },
      { 'idempotency-key': 'k-a' },
    );
    expect((await alice.get<Reply>(keyed.body.id)).body.idempotencyKey).toBe('k-a');
    expect((await root.get<Reply>(keyed.body.id)).body).not.toHaveProperty('idempotencyKey');
    // Its own searches are its own jobs: an admin names the owner it looks into.
    expect((await root.call<Reply>('GET', '/v1/jobs?type=audit')).body.items).toEqual([]);
    const pageOfAlice = await root.call<Reply>(
      'GET',
      `/v1/jobs?owner=${encodeURIComponent(ownerOf('alice'))}&type=audit`,
    );
    expect(pageOfAlice.body.items.every((j: Reply) => j.idempotencyKey === undefined)).toBe(true);
  });
}
