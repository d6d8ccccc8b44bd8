// The store as a component sees it, over a real single-manager Raft (RaftNode + DurableLog in a
// temp dir + TCP transport): transactions, versions, unique names, lookups, indexes, watches,
// snapshots. Multi-manager behaviour is in replicated.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AmbiguousError,
  MemoryStore,
  NameConflictError,
  NotFoundError,
  ResyncRequiredError,
  SequenceConflictError,
  TooOldError,
  TransactionTooLargeError,
  WatchOverflowError,
  WatchResetError,
  byDesiredState,
  byIdPrefix,
  byName,
  byNamePrefix,
  byNodeId,
  byReferencedSecret,
  byServiceId,
  bySlot,
  type ChangeEvent,
  type NewObject,
  type StoreWatch,
  type TaskState,
} from './index.js';
import type { ReplicatedStore } from './replicated.js';
import { StoreCluster } from './testing/cluster.js';

function serviceSpec(name: string): NewObject<'service'> {
  return {
    Spec: {
      Name: name,
      Labels: {},
      TaskTemplate: { ContainerSpec: { Image: 'busybox:latest', Args: ['sleep', '3600'] }, ForceUpdate: 0 },
      Mode: { Replicated: { Replicas: 1 } },
    },
  };
}

function taskFor(serviceId: string, slot: number, nodeId: string, desired: TaskState = 'running'): NewObject<'task'> {
  return {
    Spec: { ContainerSpec: { Image: 'busybox:latest' } },
    ServiceID: serviceId,
    Slot: slot,
    NodeID: nodeId,
    DesiredState: desired,
    Status: { Timestamp: new Date().toISOString(), State: 'new', Message: 'created' },
  };
}

/** Reads up to `n` events already applied (never waits). */
function drain(w: StoreWatch, n = 1000): ChangeEvent[] {
  const out: ChangeEvent[] = [];
  for (let i = 0; i < n; i++) {
    const ev = w.poll();
    if (ev === null) break;
    out.push(ev);
  }
  return out;
}

let cluster: StoreCluster;
let rs: ReplicatedStore;
let store: MemoryStore;

beforeAll(async () => {
  cluster = await StoreCluster.start({ size: 1, watchRingEvents: 64 });
  rs = await cluster.waitLeader();
  store = rs.store;
});

afterAll(async () => {
  await cluster?.close();
});

describe('transactions and versions', () => {
  it('creates objects in Docker shape with a 25-char base36 ID and Version.Index = the Raft index', async () => {
    const spec = serviceSpec('shape');
    // A field the store does not model survives the round trip.
    const withExtra = { ...spec, Spec: { ...spec.Spec, Unmodelled: { keep: [1, 2] } } } as NewObject<'service'>;
    const { result: created, version } = await store.update((tx) => tx.create('service', withExtra));
    expect(created.ID).toMatch(/^[0-9a-z]{25}$/);
    const got = store.get('service', created.ID)!;
    expect(got.Version).toEqual({ Index: version });
    expect(version).toBe(store.version);
    expect(Object.keys(got).slice(0, 4)).toEqual(['ID', 'Version', 'CreatedAt', 'UpdatedAt']);
    expect(got.CreatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(got.UpdatedAt).toBe(got.CreatedAt);
    expect(got.Spec).toEqual(withExtra.Spec);
    expect(Object.isFrozen(got) && Object.isFrozen(got.Spec.TaskTemplate)).toBe(true);
    expect(rs.node.status().commit).toBeGreaterThanOrEqual(version);
  });

  it('an update with the current version bumps Version.Index and UpdatedAt, keeps CreatedAt', async () => {
    const { result: s } = await store.update((tx) => tx.create('service', serviceSpec('bump')));
    const v1 = store.get('service', s.ID)!;
    await new Promise((r) => setTimeout(r, 2));
    const { version: v2 } = await store.update((tx) => {
      const cur = tx.get('service', s.ID)!;
      return tx.update('service', { ...cur, Spec: { ...cur.Spec, Mode: { Replicated: { Replicas: 3 } } } });
    });
    const after = store.get('service', s.ID)!;
    expect(v2).toBeGreaterThan(v1.Version.Index);
    expect(after.Version.Index).toBe(v2);
    expect(after.CreatedAt).toBe(v1.CreatedAt);
    expect(after.UpdatedAt > v1.UpdatedAt).toBe(true);
    expect(after.Spec.Mode).toEqual({ Replicated: { Replicas: 3 } });
  });

  it('a stale version fails with exactly "update out of sequence" before anything is proposed', async () => {
    const { result: s } = await store.update((tx) => tx.create('service', serviceSpec('stale')));
    const old = store.get('service', s.ID)!;
    await store.update((tx) => tx.update('service', { ...tx.get('service', s.ID)!, Spec: { ...old.Spec, Labels: { a: '1' } } }));
    const before = store.version;
    const err = await store.update((tx) => tx.update('service', { ...old, Spec: { ...old.Spec, Labels: { b: '2' } } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SequenceConflictError);
    expect((err as Error).message).toBe('update out of sequence');
    expect(store.version).toBe(before);
    expect(store.get('service', s.ID)!.Spec.Labels).toEqual({ a: '1' });
  });

  it('two transactions built on the same version: the first commits, the second fails on apply and changes nothing at all', async () => {
    const { result: s } = await store.update((tx) => tx.create('service', serviceSpec('race')));
    const read = store.get('service', s.ID)!;
    // Both functions run now, against the same committed version; both are proposed.
    const first = store.update((tx) => tx.update('service', { ...read, Spec: { ...read.Spec, Labels: { by: 'first' } } }));
    const second = store.update((tx) => {
      tx.create('secret', { Spec: { Name: 'race-side-effect', Data: Buffer.from('x').toString('base64') } });
      return tx.update('service', { ...read, Spec: { ...read.Spec, Labels: { by: 'second' } } });
    });
    const [r1, r2] = await Promise.allSettled([first, second]);
    expect(r1.status).toBe('fulfilled');
    expect(r2.status).toBe('rejected');
    expect((r2 as PromiseRejectedResult).reason).toBeInstanceOf(SequenceConflictError);
    expect(((r2 as PromiseRejectedResult).reason as Error).message).toBe('update out of sequence');
    expect(store.get('service', s.ID)!.Spec.Labels).toEqual({ by: 'first' });
    // The secret the failed transaction would have created does not exist: all or nothing.
    expect(store.find('secret', byName('race-side-effect'))).toEqual([]);
  });

  it('reads inside a transaction see its own writes; created-then-deleted proposes nothing; a throwing function proposes nothing', async () => {
    const before = store.version;
    const { version } = await store.update((tx) => {
      const a = tx.create('config', { Spec: { Name: 'tmp-config', Data: 'eA==' } });
      expect(tx.get('config', a.ID)).toBe(a);
      expect(tx.find('config', byName('tmp-config'))).toEqual([a]);
      tx.delete('config', a.ID);
      expect(tx.get('config', a.ID)).toBeUndefined();
    });
    expect(version).toBe(before);
    expect(store.version).toBe(before);
    await expect(
      store.update((tx) => {
        tx.create('config', { Spec: { Name: 'never', Data: 'eA==' } });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(store.version).toBe(before);
    expect(store.find('config', byName('never'))).toEqual([]);
  });

  it('create then update in one transaction commits the final object once; delete with a version checks it', async () => {
    const { result: c, version } = await store.update((tx) => {
      const created = tx.create('config', { Spec: { Name: 'cu', Labels: {}, Data: 'eA==' } });
      return tx.update('config', { ...created, Spec: { ...created.Spec, Labels: { final: 'yes' } } });
    });
    const got = store.get('config', c.ID)!;
    expect(got.Version.Index).toBe(version);
    expect(got.Spec.Labels).toEqual({ final: 'yes' });
    await expect(store.update((tx) => tx.delete('config', c.ID, version - 1))).rejects.toThrow('update out of sequence');
    await store.update((tx) => tx.delete('config', c.ID, version));
    expect(store.get('config', c.ID)).toBeUndefined();
    await expect(store.update((tx) => tx.delete('config', c.ID))).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses a transaction larger than the limit without proposing it', async () => {
    const before = store.version;
    const big = 'x'.repeat(1024 * 1024);
    const err = await store
      .update((tx) => {
        tx.create('config', { Spec: { Name: 'big-1', Data: big } });
        tx.create('config', { Spec: { Name: 'big-2', Data: big } });
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionTooLargeError);
    expect(store.version).toBe(before);
  });
});

describe('names', () => {
  it('are unique per kind, case-insensitively, with an error naming the conflict', async () => {
    await store.update((tx) => tx.create('service', serviceSpec('web')));
    const err = await store.update((tx) => tx.create('service', serviceSpec('web'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NameConflictError);
    expect((err as Error).message).toBe('name conflicts with an existing object: service web already exists');
    await expect(store.update((tx) => tx.create('service', serviceSpec('WEB')))).rejects.toBeInstanceOf(NameConflictError);
    // Another kind may use the name.
    await store.update((tx) => tx.create('secret', { Spec: { Name: 'web', Data: 'eA==' } }));
    expect(store.find('service', byName('Web')).map((s) => s.Spec.Name)).toEqual(['web']);
  });

  it('renaming onto a taken name fails; deleting frees the name; concurrent creates of one name commit once', async () => {
    const { result: a } = await store.update((tx) => tx.create('network', { Spec: { Name: 'net-a' } }));
    const { result: b } = await store.update((tx) => tx.create('network', { Spec: { Name: 'net-b' } }));
    const bNow = store.get('network', b.ID)!;
    await expect(store.update((tx) => tx.update('network', { ...bNow, Spec: { ...bNow.Spec, Name: 'net-a' } }))).rejects.toThrow(
      'name conflicts with an existing object: network net-a already exists',
    );
    await store.update((tx) => tx.delete('network', a.ID));
    await store.update((tx) => tx.update('network', { ...bNow, Spec: { ...bNow.Spec, Name: 'net-a' } }));
    expect(store.lookup('network', 'net-a').ID).toBe(b.ID);
    expect(store.find('network', byName('net-b'))).toEqual([]);

    const results = await Promise.allSettled([1, 2, 3].map(() => store.update((tx) => tx.create('secret', { Spec: { Name: 'once', Data: 'eA==' } }))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(NameConflictError);
    expect(store.find('secret', byName('once'))).toHaveLength(1);
  });

  it('node names are indexed but may repeat (hostnames)', async () => {
    const node = (id: string): NewObject<'node'> => ({
      ID: id,
      Spec: { Labels: {}, Role: 'worker', Availability: 'active' },
      Description: { Hostname: 'vm' },
      Status: { State: 'ready', Addr: '127.0.0.1' },
    });
    await store.update((tx) => {
      tx.create('node', node('hostdup000000000000000001'));
      tx.create('node', node('hostdup000000000000000002'));
    });
    expect(store.find('node', byName('vm'))).toHaveLength(2);
    expect(() => store.lookup('node', 'vm')).toThrow(new AmbiguousError('node', 'vm', 2).message);
  });
});

describe('lookups and indexes', () => {
  it('resolves full ID, then exact name, then a unique ID prefix, with dockerd’s errors', async () => {
    await store.update((tx) => {
      tx.create('secret', { ID: 'pfx1aaaaaaaaaaaaaaaaaaaaa', Spec: { Name: 'first', Data: 'eA==' } });
      tx.create('secret', { ID: 'pfx1bbbbbbbbbbbbbbbbbbbbb', Spec: { Name: 'second', Data: 'eA==' } });
      // A name that is another object's ID prefix: the exact name wins.
      tx.create('secret', { ID: 'zzzzzzzzzzzzzzzzzzzzzzzzz', Spec: { Name: 'pfx1a', Data: 'eA==' } });
    });
    expect(store.lookup('secret', 'pfx1aaaaaaaaaaaaaaaaaaaaa').Spec.Name).toBe('first');
    expect(store.lookup('secret', 'second').ID).toBe('pfx1bbbbbbbbbbbbbbbbbbbbb');
    expect(store.lookup('secret', 'pfx1a').ID).toBe('zzzzzzzzzzzzzzzzzzzzzzzzz');
    expect(store.lookup('secret', 'pfx1b').Spec.Name).toBe('second');
    expect(() => store.lookup('secret', 'pfx1')).toThrow('secret pfx1 is ambiguous (2 matches found)');
    expect(() => store.lookup('secret', 'nosuchsecret')).toThrow('secret nosuchsecret not found');
    expect(store.find('secret', byIdPrefix('pfx1')).map((s) => s.Spec.Name)).toEqual(['first', 'second']);
    expect(store.find('secret', byNamePrefix('SEC')).map((s) => s.Spec.Name)).toEqual(['second']);
  });

  it('finds tasks by service, node, desired state and slot, following updates and deletes', async () => {
    const { result: svc } = await store.update((tx) => tx.create('service', serviceSpec('indexed')));
    const { result: ids } = await store.update((tx) => [
      tx.create('task', taskFor(svc.ID, 1, 'node-a')).ID,
      tx.create('task', taskFor(svc.ID, 2, 'node-a')).ID,
      tx.create('task', taskFor(svc.ID, 3, 'node-b')).ID,
    ]);
    const idsOf = (ts: readonly { ID: string }[]): string[] => ts.map((t) => t.ID).sort();
    expect(idsOf(store.find('task', byServiceId(svc.ID)))).toEqual([...ids].sort());
    expect(idsOf(store.find('task', byNodeId('node-a')))).toEqual([ids[0], ids[1]].sort());
    expect(idsOf(store.find('task', bySlot(svc.ID, 3)))).toEqual([ids[2]]);

    // Task 1 moves to node-b and is told to shut down; task 3 is removed.
    await store.update((tx) => {
      const t = tx.get('task', ids[0]!)!;
      tx.update('task', { ...t, NodeID: 'node-b', DesiredState: 'shutdown' });
      // The transaction's own reads already reflect it.
      expect(idsOf(tx.find('task', byNodeId('node-b')))).toEqual([ids[0], ids[2]].sort());
      tx.delete('task', ids[2]!);
    });
    expect(idsOf(store.find('task', byNodeId('node-a')))).toEqual([ids[1]]);
    expect(idsOf(store.find('task', byNodeId('node-b')))).toEqual([ids[0]]);
    expect(idsOf(store.find('task', byDesiredState('shutdown')).filter((t) => t.ServiceID === svc.ID))).toEqual([ids[0]]);
    expect(idsOf(store.find('task', byServiceId(svc.ID)))).toEqual([ids[0], ids[1]].sort());
    expect(store.find('task', bySlot(svc.ID, 3))).toEqual([]);
  });

  it('finds services by the secrets they reference', async () => {
    const { result: sec } = await store.update((tx) => tx.create('secret', { Spec: { Name: 'db-pass', Data: 'eA==' } }));
    const spec = serviceSpec('uses-secret');
    await store.update((tx) =>
      tx.create('service', {
        Spec: {
          ...spec.Spec,
          TaskTemplate: { ContainerSpec: { Image: 'busybox', Secrets: [{ SecretID: sec.ID, SecretName: 'db-pass' }] } },
        },
      }),
    );
    expect(store.find('service', byReferencedSecret(sec.ID)).map((s) => s.Spec.Name)).toEqual(['uses-secret']);
  });
});

describe('watch', () => {
  it('delivers every change after a version, in order, without gaps, with the old object on updates', async () => {
    const from = store.version;
    const w = store.watch({ kinds: ['service'] });
    const versions: number[] = [];
    const { result: s, version: v0 } = await store.update((tx) => tx.create('service', serviceSpec('watched')));
    versions.push(v0);
    for (let i = 0; i < 5; i++) {
      const { version } = await store.update((tx) => {
        const cur = tx.get('service', s.ID)!;
        return tx.update('service', { ...cur, Spec: { ...cur.Spec, Labels: { i: String(i) } } });
      });
      versions.push(version);
    }
    // A change of another kind is filtered out.
    await store.update((tx) => tx.create('config', { Spec: { Name: 'not-watched', Data: 'eA==' } }));
    const { version: vDel } = await store.update((tx) => tx.delete('service', s.ID));
    versions.push(vDel);

    const got: ChangeEvent[] = [];
    for await (const ev of w) {
      got.push(ev);
      if (got.length === versions.length) break;
    }
    expect(got.map((e) => e.version)).toEqual(versions);
    expect(got.map((e) => e.action)).toEqual(['create', 'update', 'update', 'update', 'update', 'update', 'delete']);
    expect(got.every((e) => e.kind === 'service' && e.object.ID === s.ID)).toBe(true);
    expect(got[2]!.old).toEqual(got[1]!.object);
    expect(got[6]!.object).toEqual(got[5]!.object);

    // The same history again, from the version before it: the ring still holds it.
    const replay = store.watch({ sinceVersion: from, kinds: ['service'] });
    expect(drain(replay).map((e) => e.version)).toEqual(versions);
    replay.close();
  });

  it('a version older than the ring fails with TooOldError; re-list and watch from store.version works', async () => {
    const start = store.version;
    // The ring holds 64 events; 70 single-change transactions push `start` out of it.
    for (let i = 0; i < 70; i++) await store.update((tx) => tx.create('config', { Spec: { Name: `churn-${i}`, Data: 'eA==' } }));
    let err: unknown;
    try {
      store.watch({ sinceVersion: start });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TooOldError);
    expect(err).toBeInstanceOf(ResyncRequiredError);
    expect((err as Error).message).toContain('too old, resync');
    // Resync: list, then watch from the version the list reflects.
    const [listed, w] = store.viewAndWatch((tx) => tx.find('config', byNamePrefix('churn-')).length);
    expect(listed).toBe(70);
    const { version } = await store.update((tx) => tx.create('config', { Spec: { Name: 'after-resync', Data: 'eA==' } }));
    const ev = await w.next();
    expect(ev.done).toBe(false);
    expect(ev.value).toMatchObject({ kind: 'config', action: 'create', version });
    w.close();
  });

  it('a subscriber that falls a ring behind is dropped with a resync signal, not buffered', async () => {
    const slow = store.watch();
    for (let i = 0; i < 70; i++) await store.update((tx) => tx.create('config', { Spec: { Name: `flood-${i}`, Data: 'eA==' } }));
    await expect(slow.next()).rejects.toBeInstanceOf(WatchOverflowError);
    // Once dropped it stays closed.
    await expect(slow.next()).resolves.toEqual({ done: true, value: undefined });
    expect(store.stats().watches).toBe(0);
  });

  it('a subscriber to some kinds is not woken, nor pushed out of the ring, by changes to other kinds', async () => {
    const nets = store.watch({ kinds: ['network'] });
    let woken = 0;
    const pending = nets.next().then((r) => {
      woken++;
      return r;
    });
    // More changes of another kind than the ring holds (64).
    for (let i = 0; i < 70; i++) await store.update((tx) => tx.create('config', { Spec: { Name: `other-${i}`, Data: 'eA==' } }));
    await new Promise((r) => setTimeout(r, 10));
    expect(woken).toBe(0);
    const { version } = await store.update((tx) => tx.create('network', { Spec: { Name: 'wanted' } }));
    await expect(pending).resolves.toMatchObject({ done: false, value: { kind: 'network', version, action: 'create' } });
    // A subscriber that is not reading at all keeps its place the same way.
    for (let i = 0; i < 70; i++) await store.update((tx) => tx.create('config', { Spec: { Name: `more-${i}`, Data: 'eA==' } }));
    const again = await store.update((tx) => tx.create('network', { Spec: { Name: 'wanted-too' } }));
    expect(nets.poll()).toMatchObject({ kind: 'network', version: again.version });
    nets.close();
  });

  it('a waiting subscriber is woken by a change and ends cleanly on close', async () => {
    const w = store.watch({ kinds: ['network'] });
    const pending = w.next();
    const { version } = await store.update((tx) => tx.create('network', { Spec: { Name: 'wake-up' } }));
    await expect(pending).resolves.toMatchObject({ done: false, value: { version, action: 'create' } });
    const waiting = w.next();
    w.close();
    await expect(waiting).resolves.toEqual({ done: true, value: undefined });
  });
});

describe('snapshots', () => {
  it('snapshotData → restore rebuilds every object and index; watches on the replaced store must resync', async () => {
    const { result: svc } = await store.update((tx) => tx.create('service', serviceSpec('snap-svc')));
    await store.update((tx) => tx.create('task', taskFor(svc.ID, 1, 'node-snap')));
    const data = store.snapshotData();
    const copy = new MemoryStore();
    const w = copy.watch();
    copy.restore({ metadata: { index: store.version }, data });
    expect(copy.version).toBe(store.version);
    for (const k of ['service', 'task', 'secret', 'config', 'network', 'node', 'cluster'] as const) {
      expect(copy.find(k)).toEqual(store.find(k));
    }
    expect(copy.find('task', byNodeId('node-snap')).map((t) => t.ServiceID)).toEqual([svc.ID]);
    expect(copy.lookup('service', 'snap-svc').ID).toBe(svc.ID);
    await expect(w.next()).rejects.toBeInstanceOf(WatchResetError);
    // Watching from the snapshot's version works.
    expect(() => copy.watch({ sinceVersion: store.version })).not.toThrow();
    expect(() => copy.watch({ sinceVersion: store.version - 1 })).toThrow(TooOldError);
    // JSON is acceptable for the objects, not for the framing: a snapshot is barely more than its objects' JSON.
    const objectsJson = ['service', 'task', 'secret', 'config', 'network', 'node', 'cluster'].reduce(
      (n, k) => n + Buffer.byteLength(JSON.stringify(store.find(k as 'service'))),
      0,
    );
    expect(data.byteLength).toBeLessThan(objectsJson + 64);
    copy.close();
  });
});
