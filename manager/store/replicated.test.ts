// Three managers in one process — real RaftNodes, DurableLogs in temp dirs (fsync on), the TCP
// transport on loopback — each with its MemoryStore. What the cluster's users see: a write on
// the leader is on all three with the same versions, in the same order on every watch; a
// restart of everything comes back identical (snapshot + log replay); a follower that fell far
// behind is brought up to date with a snapshot.
import { afterEach, describe, expect, it } from 'vitest';
import { KINDS, WatchResetError, byServiceId, type ChangeEvent, type MemoryStore, type NewObject } from './index.js';
import type { ReplicatedStore } from './replicated.js';
import { StoreCluster, waitFor } from './testing/cluster.js';

const clusters: StoreCluster[] = [];

afterEach(async () => {
  await Promise.allSettled(clusters.splice(0).map((c) => c.close()));
});

async function startCluster(opts: { snapshotIntervalEntries?: number; snapshotKeepEntries?: number } = {}): Promise<StoreCluster> {
  const c = await StoreCluster.start({ size: 3, ...opts });
  clusters.push(c);
  return c;
}

/** Everything in a store, in a canonical order. */
function dump(s: MemoryStore): string {
  return JSON.stringify(KINDS.map((k) => s.find(k).sort((a, b) => (a.ID < b.ID ? -1 : 1))));
}

function serviceSpec(name: string, replicas = 1): NewObject<'service'> {
  return { Spec: { Name: name, Labels: {}, TaskTemplate: { ContainerSpec: { Image: 'busybox:latest' } }, Mode: { Replicated: { Replicas: replicas } } } };
}

/** A mixed workload: services with tasks, scale updates, a secret, deletes. Returns the last version. */
async function workload(leader: ReplicatedStore, prefix: string, services: number): Promise<number> {
  const s = leader.store;
  let last = 0;
  for (let i = 0; i < services; i++) {
    const { result: svc } = await s.update((tx) => tx.create('service', serviceSpec(`${prefix}-${i}`)));
    await s.update((tx) => {
      for (let slot = 1; slot <= 2; slot++) {
        tx.create('task', {
          Spec: svc.Spec.TaskTemplate,
          ServiceID: svc.ID,
          Slot: slot,
          NodeID: `node-${slot}`,
          DesiredState: 'running',
          Status: { Timestamp: new Date().toISOString(), State: 'new', Message: 'created' },
        });
      }
    });
    ({ version: last } = await s.update((tx) => {
      const cur = tx.get('service', svc.ID)!;
      return tx.update('service', { ...cur, Spec: { ...cur.Spec, Mode: { Replicated: { Replicas: 2 } } } });
    }));
  }
  ({ version: last } = await s.update((tx) => tx.create('secret', { Spec: { Name: `${prefix}-secret`, Data: Buffer.from('hunter2').toString('base64') } })));
  // Delete the first service and its tasks in one transaction.
  const first = s.lookup('service', `${prefix}-0`);
  ({ version: last } = await s.update((tx) => {
    for (const t of tx.find('task', byServiceId(first.ID))) tx.delete('task', t.ID);
    tx.delete('service', first.ID);
  }));
  return last;
}

describe('three managers over loopback TCP with durable logs', () => {
  it('a write on the leader appears on every manager with identical versions, and every watch sees the same order', async () => {
    const c = await startCluster();
    const leader = await c.waitLeader();
    const watches = new Map(c.running().map((r) => [r.node.id, r.store.watch()]));

    const last = await workload(leader, 'web', 10);
    await c.waitApplied(last);
    const reference = dump(leader.store);
    expect(leader.store.count('service')).toBe(9);
    expect(leader.store.count('task')).toBe(18);
    for (const r of c.running()) expect(dump(r.store)).toBe(reference);

    // Same events, same versions, same order everywhere.
    const seen = [...watches.values()].map((w) => {
      const evs: ChangeEvent[] = [];
      for (let ev = w.poll(); ev !== null; ev = w.poll()) evs.push(ev);
      return evs.map((e) => `${e.version}:${e.kind}:${e.action}:${e.object.ID}`);
    });
    expect(seen[0]!.length).toBe(10 * 4 + 1 + 3);
    for (const s of seen) expect(s).toEqual(seen[0]);

    // A follower refuses writes (the control API will forward them) and changes nothing.
    const follower = c.running().find((r) => r !== leader)!;
    const before = follower.store.version;
    await expect(follower.store.update((tx) => tx.create('service', serviceSpec('from-follower')))).rejects.toMatchObject({
      code: 'ERR_RAFT_NOT_LEADER',
    });
    expect(follower.store.version).toBe(before);
    for (const w of watches.values()) w.close();
  });

  it('restarting all three brings back identical state from snapshot + log replay', async () => {
    const c = await startCluster({ snapshotIntervalEntries: 20, snapshotKeepEntries: 5 });
    const leader = await c.waitLeader();
    const last = await workload(leader, 'api', 25);
    await c.waitApplied(last);
    const reference = dump(leader.store);
    const versions = c.running().map((r) => r.store.version);
    // Snapshots were taken and the logs compacted behind them.
    for (const r of c.running()) expect(r.node.status().firstIndex).toBeGreaterThan(20);

    for (const id of c.ids) await c.stopMember(id);
    for (const id of c.ids) await c.startMember(id);
    // Before any peer is reachable each manager already rebuilt its state from its own disk.
    for (const r of c.running()) {
      await waitFor('replay of the local log', () => r.store.version >= last);
      expect(r.store.stats().restores).toBe(1);
      expect(dump(r.store)).toBe(reference);
    }
    expect(c.running().map((r) => r.store.version)).toEqual(versions);

    // And the cluster carries on: a new write lands everywhere.
    c.connect();
    const leader2 = await c.waitLeader();
    const { version } = await leader2.store.update((tx) => tx.create('config', { Spec: { Name: 'after-restart', Data: 'eA==' } }));
    await c.waitApplied(version);
    const ref2 = dump(leader2.store);
    for (const r of c.running()) expect(dump(r.store)).toBe(ref2);
  });

  it('a follower far behind the compacted log receives a snapshot and rebuilds its store', async () => {
    const c = await startCluster({ snapshotIntervalEntries: 20, snapshotKeepEntries: 5 });
    const leader = await c.waitLeader();
    await workload(leader, 'early', 2);
    const laggard = c.ids.find((id) => c.rs(id) !== leader)!;
    await c.waitApplied(leader.store.version);
    const laggardVersion = c.rs(laggard).store.version;
    await c.stopMember(laggard);

    const last = await workload(leader, 'late', 20);
    expect(leader.node.status().firstIndex).toBeGreaterThan(20);

    // Restart it disconnected, watch it, then let it talk to the others.
    const back = await c.startMember(laggard);
    await waitFor('local replay', () => back.store.version >= laggardVersion);
    const behindAt = back.store.version;
    const w = back.store.watch();
    c.connect();
    await waitFor('the laggard to catch up', () => back.store.version >= last, 15_000);
    expect(back.store.stats().lastRestoreIndex).toBeGreaterThan(behindAt);
    expect(dump(back.store)).toBe(dump(leader.store));
    // Its watchers cannot be given the individual changes: they are told to resync.
    await expect(w.next()).rejects.toBeInstanceOf(WatchResetError);
  });
});
