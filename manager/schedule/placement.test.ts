// Scale-ups created already placed: the replicated orchestrator asks the scheduler's placer for
// nodes before it creates the tasks, so each task is written once (ASSIGNED) instead of twice
// (PENDING, then ASSIGNED by the scheduler loop). Real single-manager store, real loops.
import { afterEach, describe, expect, it } from 'vitest';

import { ReplicatedOrchestrator } from '../orchestrator/replicated.js';
import { addNode, createService, spec, startHarness, tasksOf, waitFor, type Harness } from '../orchestrator/testing/harness.js';
import type { ServiceSpec, Task } from '../store/types.js';
import type { ChangeEvent, StoreWatch } from '../store/watch.js';
import { Placement } from './placement.js';
import { SchedulerLoop } from './scheduler-loop.js';

const MiB = 2 ** 20;

let h: Harness | null = null;
let loops: { stop(): Promise<void> }[] = [];
let watches: StoreWatch[] = [];

afterEach(async () => {
  for (const w of watches) w.close();
  watches = [];
  for (const l of loops) await l.stop();
  loops = [];
  await h?.close();
  h = null;
});

interface Setup {
  readonly h: Harness;
  readonly rep: ReplicatedOrchestrator;
  readonly sched: SchedulerLoop;
  /** Every task event so far (drained from a watch opened before the loops started). */
  events(): ChangeEvent[];
}

async function setup(nodes: readonly { hostname: string; labels?: Record<string, string>; memoryBytes?: number }[], o: { maxTxInFlight?: number } = {}): Promise<Setup> {
  const hh = await startHarness();
  h = hh;
  for (const n of nodes) await addNode(hh.store, n);
  const placer = new Placement();
  const base = { store: hh.store, clock: hh.clock, logger: hh.logger, placer };
  const rep = new ReplicatedOrchestrator({ ...base, ...(o.maxTxInFlight !== undefined ? { maxTxInFlight: o.maxTxInFlight } : {}) });
  const sched = new SchedulerLoop(base);
  loops = [rep, sched];
  const watch = hh.store.watch({ kinds: ['task'] });
  watches.push(watch);
  const seen: ChangeEvent[] = [];
  rep.start();
  sched.start();
  return {
    h: hh,
    rep,
    sched,
    events: () => {
      for (let ev = watch.poll(); ev !== null; ev = watch.poll()) seen.push(ev);
      return seen;
    },
  };
}

const withMemory = (s: ServiceSpec, bytes: number): ServiceSpec => ({ ...s, TaskTemplate: { ...s.TaskTemplate, Resources: { Reservations: { MemoryBytes: bytes } } } });
const withConstraint = (s: ServiceSpec, c: string): ServiceSpec => ({ ...s, TaskTemplate: { ...s.TaskTemplate, Placement: { Constraints: [c] } } });

function countBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return m;
}

/** The state each task of `serviceId` was created in. */
function createdStates(events: readonly ChangeEvent[], serviceId: string): Map<string, number> {
  const created = events.filter((e): e is ChangeEvent & { kind: 'task' } => e.kind === 'task' && e.action === 'create' && (e.object as Task).ServiceID === serviceId);
  return countBy(created, (e) => (e.object as Task).Status.State);
}

describe('scale-ups created placed', () => {
  it('every task is created ASSIGNED, spread evenly, written once, a node’s tasks in one entry, no scheduler pass needed', async () => {
    // 2 transactions of 1,000 in flight at once: 2,500 tasks take three, the third built when the first committed.
    const s = await setup(
      Array.from({ length: 8 }, (_, i) => ({ hostname: `n${i + 1}` })),
      { maxTxInFlight: 2 },
    );
    const svc = await createService(s.h.store, spec('web', { replicas: 2_500 }));
    await waitFor('2,500 tasks assigned', () => tasksOf(s.h.store, svc.ID).filter((t) => t.Status.State === 'assigned').length === 2_500);
    const events = s.events();
    expect(createdStates(events, svc.ID)).toEqual(new Map([['assigned', 2_500]]));
    // Written once each: no update of any task of the service.
    expect(events.filter((e) => e.action !== 'create').length).toBe(0);
    expect(s.rep.placedAtCreation).toBe(2_500);
    expect(s.sched.lastPass.assigned).toBe(0);
    const perNode = [...countBy(tasksOf(s.h.store, svc.ID), (t) => t.NodeID).values()];
    expect(perNode.length).toBe(8);
    expect(Math.max(...perNode) - Math.min(...perNode)).toBeLessThanOrEqual(1);
    // Each node's tasks arrive in one Raft entry (one assignment message): transactions are cut
    // between nodes, across the two passes too.
    const entriesPerNode = new Map<string, Set<number>>();
    for (const e of events) {
      const t = e.object as Task;
      const set = entriesPerNode.get(t.NodeID) ?? new Set<number>();
      set.add(e.version);
      entriesPerNode.set(t.NodeID, set);
    }
    expect([...entriesPerNode.values()].map((v) => v.size)).toEqual(Array.from({ length: 8 }, () => 1));
  });

  it('a node that changes while a scale-up is being committed gets nothing more from it: the rest waits PENDING for the scheduler loop', async () => {
    // One transaction in flight at a time: 2,500 tasks on 8 nodes take three. Right after the first
    // one commits (and before the second is built), a node it did not use is drained.
    const s = await setup(
      Array.from({ length: 8 }, (_, i) => ({ hostname: `n${i + 1}` })),
      { maxTxInFlight: 1 },
    );
    const store = s.h.store;
    const update = store.update.bind(store);
    let calls = 0;
    let drained = '';
    store.update = ((fn: Parameters<typeof store.update>[0]) => {
      const p = update(fn);
      if (++calls !== 2) return p; // 1: createService; 2: the orchestrator's first transaction
      return p.then(async (r) => {
        const used = new Set(store.find('task').map((t) => t.NodeID));
        drained = store.find('node').find((n) => !used.has(n.ID))!.ID;
        await update((tx) => {
          const n = tx.get('node', drained)!;
          tx.update('node', { ...n, Spec: { ...n.Spec, Availability: 'drain' } });
        });
        return r;
      });
    }) as typeof store.update;
    const svc = await createService(store, spec('web', { replicas: 2_500 }));
    await waitFor('2,500 tasks assigned', () => tasksOf(store, svc.ID).filter((t) => t.Status.State === 'assigned').length === 2_500);
    expect(drained).not.toBe('');
    const ts = tasksOf(store, svc.ID);
    expect(ts.filter((t) => t.NodeID === drained)).toEqual([]);
    expect(new Set(ts.map((t) => t.NodeID)).size).toBe(7);
    // The first transaction's tasks were created placed; what was left of the list went PENDING.
    const created = createdStates(s.events(), svc.ID);
    expect(created.get('assigned')).toBe(s.rep.placedAtCreation);
    expect(created.get('assigned')).toBeGreaterThan(0);
    expect(created.get('pending')).toBe(2_500 - s.rep.placedAtCreation);
  });

  it('constraints and reservations hold: what fits is created placed, the rest waits PENDING with the reason', async () => {
    const s = await setup([
      { hostname: 'a1', labels: { zone: 'a' }, memoryBytes: 1024 * MiB },
      { hostname: 'a2', labels: { zone: 'a' }, memoryBytes: 1024 * MiB },
      { hostname: 'b1', labels: { zone: 'b' }, memoryBytes: 8192 * MiB },
    ]);
    const zoneA = new Set(s.h.store.find('node').filter((n) => n.Spec.Labels?.['zone'] === 'a').map((n) => n.ID));
    const svc = await createService(s.h.store, withConstraint(withMemory(spec('db', { replicas: 6 }), 400 * MiB), 'node.labels.zone==a'));
    await waitFor('4 assigned and 2 pending with a reason', () => {
      const ts = tasksOf(s.h.store, svc.ID);
      return ts.filter((t) => t.Status.State === 'assigned').length === 4 && ts.filter((t) => t.Status.State === 'pending' && t.Status.Err !== undefined).length === 2;
    });
    const ts = tasksOf(s.h.store, svc.ID);
    for (const t of ts.filter((x) => x.Status.State === 'assigned')) expect(zoneA.has(t.NodeID)).toBe(true);
    expect(new Set(ts.filter((t) => t.Status.State === 'assigned').map((t) => t.NodeID)).size).toBe(2);
    const reason = ts.find((t) => t.Status.State === 'pending')!.Status.Err!;
    expect(reason).toMatch(/^no suitable node \(/);
    expect(reason).toContain('insufficient memory on 2 nodes');
    expect(reason).toContain('node.labels.zone==a');
    expect(createdStates(s.events(), svc.ID)).toEqual(new Map([['assigned', 4], ['pending', 2]]));
  });

  it('tasks already waiting for a node go first: a scale-up then is created PENDING and placed by the scheduler loop', async () => {
    const s = await setup([{ hostname: 'n1' }, { hostname: 'n2' }]);
    const stuck = await createService(s.h.store, withConstraint(spec('stuck', { replicas: 2 }), 'node.labels.zone==nowhere'));
    await waitFor('the stuck tasks pending with a reason', () => tasksOf(s.h.store, stuck.ID).filter((t) => t.Status.Err !== undefined).length === 2);
    const web = await createService(s.h.store, spec('web', { replicas: 3 }));
    await waitFor('web assigned by the scheduler loop', () => tasksOf(s.h.store, web.ID).filter((t) => t.Status.State === 'assigned').length === 3);
    expect(createdStates(s.events(), web.ID)).toEqual(new Map([['pending', 3]]));
    expect(s.rep.placedAtCreation).toBe(0);
    expect(tasksOf(s.h.store, stuck.ID).every((t) => t.Status.State === 'pending')).toBe(true);
  });

  it('placements and scheduler passes racing never put a node over its memory', async () => {
    // Two nodes with room for 3 tasks each; 4 services of 3 such tasks created at once, then
    // more scale-ups while the first commits are in flight: 6 tasks fit, the rest must wait.
    const s = await setup([
      { hostname: 'n1', memoryBytes: 1000 * MiB },
      { hostname: 'n2', memoryBytes: 1000 * MiB },
    ]);
    const specs = ['a', 'b', 'c', 'd'].map((n) => withMemory(spec(n, { replicas: 3 }), 300 * MiB));
    const made = await Promise.all(specs.map((sp) => createService(s.h.store, sp)));
    await Promise.all(
      made.slice(0, 2).map((svc) =>
        s.h.store.update((tx) => {
          const cur = tx.get('service', svc.ID)!;
          tx.update('service', { ...cur, Spec: { ...cur.Spec, Mode: { Replicated: { Replicas: 4 } } } });
        }),
      ),
    );
    const all = (): Task[] => made.flatMap((svc) => tasksOf(s.h.store, svc.ID));
    await waitFor('6 assigned, 8 pending with a reason', () => {
      const ts = all();
      return ts.length === 14 && ts.filter((t) => t.Status.State === 'assigned').length === 6 && ts.filter((t) => t.Status.State === 'pending' && t.Status.Err !== undefined).length === 8;
    });
    const perNode = countBy(all().filter((t) => t.Status.State === 'assigned'), (t) => t.NodeID);
    expect([...perNode.values()].sort()).toEqual([3, 3]);
  });
});

describe('Placement.exclusive', () => {
  it('runs one placement at a time, in order, and a failed one does not block the next', async () => {
    const p = new Placement();
    const log: string[] = [];
    const step = (name: string, fail = false) => async (): Promise<string> => {
      log.push(`${name} start`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`${name} end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
    const results = await Promise.allSettled([p.exclusive(step('a')), p.exclusive(step('b', true)), p.exclusive(step('c'))]);
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});
