// The proposing manager applies its own transactions from the objects the transaction built
// (it skips decoding the entry), while every other manager decodes the entry — and an update
// travels as the top-level fields it changed. These tests pin that both give the same objects,
// field for field and in the same order, whatever a caller writes (values JSON changes: undefined,
// NaN, -0, a Date, array holes, a "__proto__" key), and that no caller can change a stored
// object: not through the object it wrote, nor through what the store hands out.
//
// Two MemoryStores are wired as a leader and a follower through a proposer that hands each
// entry to both, in order (Raft's part is replicated.test.ts's).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MemoryStore, type NewObject, type Service, type StoreObject, type Task } from './index.js';
import type { ChangeEvent } from './watch.js';

const silent = pino({ level: 'silent' });

function pair(): { leader: MemoryStore; follower: MemoryStore } {
  let index = 0;
  const follower = new MemoryStore({ logger: silent });
  const leader: MemoryStore = new MemoryStore({
    logger: silent,
    proposer: {
      propose: (data: Uint8Array) => {
        index++;
        leader.applyEntry({ index, data });
        follower.applyEntry({ index, data });
        return Promise.resolve({ index, term: 1 });
      },
    },
  });
  return { leader, follower };
}

/** Every own key of every object and array, in order, with the type of each value. */
function shape(v: unknown, at = '$'): string[] {
  if (typeof v !== 'object' || v === null) return [`${at}:${v === null ? 'null' : typeof v}:${Object.is(v, -0) ? '-0' : String(v)}`];
  const proto = Object.getPrototypeOf(v) as unknown;
  const kind = Array.isArray(v) ? 'array' : proto === Object.prototype ? 'object' : 'other';
  return [`${at}:${kind}:${Reflect.ownKeys(v).map(String).join(',')}`, ...Reflect.ownKeys(v).flatMap((k) => shape((v as Record<string | symbol, unknown>)[k], `${at}.${String(k)}`))];
}

function isDeepFrozen(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return true;
  return Object.isFrozen(v) && Object.values(v).every(isDeepFrozen);
}

function expectSame(leader: MemoryStore, follower: MemoryStore): void {
  expect(follower.version).toBe(leader.version);
  for (const kind of ['service', 'task'] as const) {
    const l = leader.find(kind).sort((a, b) => (a.ID < b.ID ? -1 : 1));
    const f = follower.find(kind).sort((a, b) => (a.ID < b.ID ? -1 : 1));
    expect(l.map((o) => shape(o))).toEqual(f.map((o) => shape(o)));
    expect(JSON.stringify(l)).toBe(JSON.stringify(f));
  }
}

const template = { ContainerSpec: { Image: 'busybox:latest', Args: ['sleep', '3600'] }, ForceUpdate: 0 };

describe('the proposer applies its own objects; the others decode the entry', () => {
  it('both hold the same objects, whatever values JSON would change', async () => {
    const { leader, follower } = pair();
    const holed: unknown[] = [1, undefined];
    holed[3] = 3; // a hole at 2
    const odd = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') as Record<string, unknown>;
    const spec = {
      Name: 'odd',
      Labels: { gone: undefined, kept: 'yes' },
      TaskTemplate: template,
      Mode: { Replicated: { Replicas: 1 } },
      Odd: { nan: NaN, inf: -Infinity, negZero: -0, when: new Date(Date.UTC(2026, 0, 2)), list: holed, proto: odd, map: new Map([['a', 1]]) },
    };
    const { result: svc } = await leader.update((tx) => tx.create('service', { Spec: spec } as unknown as NewObject<'service'>));
    expectSame(leader, follower);
    const got = leader.get('service', svc.ID) as unknown as { Spec: { Labels: object; Odd: Record<string, unknown> } };
    expect(Object.keys(got.Spec.Labels)).toEqual(['kept']);
    expect(got.Spec.Odd).toEqual({ nan: null, inf: null, negZero: 0, when: '2026-01-02T00:00:00.000Z', list: [1, null, null, 3], proto: odd, map: {} });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();

    // An update through a spread of what was read: only the changed fields travel.
    await leader.update((tx) => {
      const cur = tx.get('service', svc.ID)!;
      tx.update('service', { ...cur, Spec: { ...cur.Spec, Mode: { Replicated: { Replicas: 2 } } }, Extra: { when: new Date(0), u: undefined } } as unknown as Service);
    });
    expectSame(leader, follower);
    // A field removed (by spreading and leaving it out, or setting it to undefined) is gone everywhere.
    await leader.update((tx) => {
      const { Extra: _extra, ...rest } = tx.get('service', svc.ID)! as unknown as Record<string, unknown>;
      tx.update('service', { ...rest, Spec: { ...(rest['Spec'] as object), Labels: undefined } } as unknown as Service);
    });
    expectSame(leader, follower);
    expect('Extra' in leader.get('service', svc.ID)!).toBe(false);
    expect('Labels' in leader.get('service', svc.ID)!.Spec).toBe(false);
    leader.close();
    follower.close();
  });

  it('several writes of one object in one transaction, and tasks through their whole life, agree field for field', async () => {
    const { leader, follower } = pair();
    const { result: svc } = await leader.update((tx) => tx.create('service', { Spec: { Name: 'web', TaskTemplate: template, Mode: { Replicated: { Replicas: 3 } } } }));
    const ids: string[] = [];
    await leader.update((tx) => {
      for (let slot = 1; slot <= 3; slot++) {
        const t = tx.create('task', {
          Spec: svc.Spec.TaskTemplate,
          ServiceID: svc.ID,
          Slot: slot,
          NodeID: '',
          DesiredState: 'running',
          Status: { Timestamp: '2026-01-01T00:00:00Z', State: 'new', Message: 'created' },
        } as NewObject<'task'>);
        ids.push(t.ID);
        // Written again in the same transaction: still one create.
        tx.update('task', { ...t, Status: { ...t.Status, State: 'pending', Message: 'allocated' } });
      }
    });
    expectSame(leader, follower);
    const states = ['assigned', 'accepted', 'running'] as const;
    for (const state of states) {
      await leader.update((tx) => {
        for (const id of ids) {
          const t = tx.get('task', id)!;
          const step = tx.update('task', { ...t, NodeID: 'node-1', Status: { ...t.Status, State: state, Message: state } });
          // Twice in one transaction, the second built on the first.
          tx.update('task', { ...step, Status: { ...step.Status, Err: state === 'running' ? undefined : '' } } as Task);
        }
      });
      expectSame(leader, follower);
    }
    for (const store of [leader, follower]) {
      expect(store.find('task').map((t) => t.Status.State)).toEqual(['running', 'running', 'running']);
      expect(store.find('task').map((t) => Object.keys(t))).toEqual(ids.map(() => ['ID', 'Version', 'CreatedAt', 'UpdatedAt', 'Spec', 'ServiceID', 'Slot', 'NodeID', 'DesiredState', 'Status']));
    }
    leader.close();
    follower.close();
  });
});

describe('creates of one batch with equal values in a field', () => {
  it('send the value once (equal, not only the same object): both managers hold equal tasks, the follower one shared Status', async () => {
    let index = 0;
    const sizes: number[] = [];
    const follower = new MemoryStore({ logger: silent });
    const leader: MemoryStore = new MemoryStore({
      logger: silent,
      proposer: {
        propose: (data: Uint8Array) => {
          index++;
          sizes.push(data.byteLength);
          leader.applyEntry({ index, data });
          follower.applyEntry({ index, data });
          return Promise.resolve({ index, term: 1 });
        },
      },
    });
    const { result: svc } = await leader.update((tx) => tx.create('service', { Spec: { Name: 'web', TaskTemplate: template, Mode: { Replicated: { Replicas: 100 } } } }));
    const batch = async (status: (slot: number) => object): Promise<string[]> =>
      (
        await leader.update((tx) => {
          const ids: string[] = [];
          for (let slot = 1; slot <= 100; slot++) {
            ids.push(tx.create('task', { Spec: svc.Spec.TaskTemplate, ServiceID: svc.ID, Slot: slot, NodeID: '', DesiredState: 'running', Status: status(slot) } as unknown as NewObject<'task'>).ID);
          }
          return ids;
        })
      ).result;
    // Every task its own Status object, all equal (what an orchestrator pass makes).
    const equal = await batch(() => ({ Timestamp: '2026-01-01T00:00:00.000Z', State: 'pending', Message: 'pending task scheduling' }));
    // Equal ones, then different ones (another timestamp, a nested part that is not the same object, other keys).
    const mixed = await batch((slot) =>
      slot <= 40
        ? { Timestamp: '2026-01-01T00:00:00.000Z', State: 'pending', Message: 'pending task scheduling' }
        : slot <= 60
          ? { Timestamp: `2026-01-01T00:00:${String(slot).padStart(2, '0')}.000Z`, State: 'pending', Message: 'pending task scheduling' }
          : slot <= 80
            ? { Timestamp: '2026-01-01T00:00:00.000Z', State: 'pending', Message: 'pending task scheduling', PortStatus: { Ports: [] } }
            : { State: 'pending', Timestamp: '2026-01-01T00:00:00.000Z', Message: 'pending task scheduling' },
    );
    expectSame(leader, follower);
    const st = (s: MemoryStore, id: string): Task['Status'] => s.get('task', id)!.Status;
    for (const id of [...equal, ...mixed]) expect(st(follower, id)).toEqual(st(leader, id));
    expect(Object.keys(st(follower, mixed[99]!))).toEqual(['State', 'Timestamp', 'Message']);
    // The follower parsed the equal Status once per batch.
    expect(new Set(equal.map((id) => st(follower, id))).size).toBe(1);
    expect(new Set(mixed.slice(0, 40).map((id) => st(follower, id))).size).toBe(1);
    expect(new Set(mixed.slice(40, 60).map((id) => st(follower, id))).size).toBe(20);
    expect(follower.find('task').every(isDeepFrozen)).toBe(true);
    // The entry of 100 equal ones is smaller than that of 100 tasks with 60 to 100 unshared.
    expect(sizes[1]!).toBeLessThan(sizes[2]! - 40 * 50);
    leader.close();
    follower.close();
  });
});

describe('callers cannot change what the store holds', () => {
  it('stored objects, shared parts and watch events are deeply frozen on leader and follower; the written object stays the caller’s', async () => {
    const { leader, follower } = pair();
    const lw = leader.watch();
    const fw = follower.watch();
    const mine = { Spec: { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox', Args: ['a'] } }, Mode: { Replicated: { Replicas: 1 } } } };
    const { result: svc } = await leader.update((tx) => tx.create('service', mine as NewObject<'service'>));
    mine.Spec.TaskTemplate.ContainerSpec.Args.push('changed after the write');
    mine.Spec.Name = 'renamed';
    const status = { Timestamp: '2026-01-01T00:00:00Z', State: 'new' as const, Message: 'created', Extra: ['x'] };
    const { result: task } = await leader.update((tx) =>
      tx.create('task', { Spec: svc.Spec.TaskTemplate, ServiceID: svc.ID, Slot: 1, NodeID: '', DesiredState: 'running', Status: status } as unknown as NewObject<'task'>),
    );
    const nextStatus = { ...status, State: 'running' as const, Extra: ['y'] };
    await leader.update((tx) => tx.update('task', { ...tx.get('task', task.ID)!, Status: nextStatus } as unknown as Task));
    nextStatus.Extra.push('changed after the write');
    for (const store of [leader, follower]) {
      const s = store.get('service', svc.ID)!;
      expect(s.Spec.Name).toBe('web');
      expect(s.Spec.TaskTemplate.ContainerSpec?.Args).toEqual(['a']);
      const t = store.get('task', task.ID)! as unknown as { Status: { Extra: string[] } } & StoreObject;
      expect(t.Status.Extra).toEqual(['y']);
      for (const o of [s, t]) {
        expect(isDeepFrozen(o)).toBe(true);
        expect(() => {
          (o as unknown as { Spec: { Extra?: number } }).Spec.Extra = 1;
        }).toThrow(TypeError);
      }
    }
    // A frozen object with a part that is not frozen is copied: changing that part later changes nothing stored.
    const inner = { Image: 'busybox', Args: ['b'] };
    const shallow = Object.freeze({ ContainerSpec: inner });
    const deep = Object.freeze({ ContainerSpec: Object.freeze({ Image: 'busybox', Gone: undefined }) });
    const made = await leader.update((tx) => [
      tx.create('task', { Spec: shallow, ServiceID: svc.ID, Slot: 2, NodeID: '', DesiredState: 'running', Status: status } as unknown as NewObject<'task'>),
      tx.create('task', { Spec: deep, ServiceID: svc.ID, Slot: 3, NodeID: '', DesiredState: 'running', Status: status } as unknown as NewObject<'task'>),
    ]);
    inner.Args.push('changed after the write');
    for (const store of [leader, follower]) {
      const [a, b] = made.result.map((t) => store.get('task', t.ID)!);
      expect(a!.Spec.ContainerSpec).toEqual({ Image: 'busybox', Args: ['b'] });
      expect(a!.Spec).not.toBe(shallow);
      expect(Object.keys(b!.Spec.ContainerSpec!)).toEqual(['Image']);
      expect(isDeepFrozen(a) && isDeepFrozen(b)).toBe(true);
    }
    // The service's template, frozen by the store, is shared by the leader's tasks rather than copied.
    expect(leader.get('task', task.ID)!.Spec).toBe(leader.get('service', svc.ID)!.Spec.TaskTemplate);
    expectSame(leader, follower);

    const events: ChangeEvent[] = [];
    for (const w of [lw, fw]) for (let ev = w.poll(); ev !== null; ev = w.poll()) events.push(ev);
    expect(events).toHaveLength(10);
    for (const ev of events) {
      expect(isDeepFrozen(ev.object)).toBe(true);
      expect(isDeepFrozen(ev.old)).toBe(true);
    }
    leader.close();
    follower.close();
  });
});
