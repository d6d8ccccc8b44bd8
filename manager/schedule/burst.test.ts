// The scheduler loop and the replicated orchestrator's creation burst, over a real single-manager
// store with a manual clock that the tests never advance unless they say so: whatever gets placed
// was placed without waiting on a timer.
import { afterEach, describe, expect, it } from 'vitest';

import { CreationBurst } from '../orchestrator/burst.js';
import { ReplicatedOrchestrator } from '../orchestrator/replicated.js';
import { newTask } from '../orchestrator/service-model.js';
import { addNode, createService, spec, startHarness, tasksOf, waitFor, type Harness } from '../orchestrator/testing/harness.js';
import type { ManualClock } from '../orchestrator/clock.js';
import type { ChangeEvent } from '../store/watch.js';
import { chunksByGroup, SchedulerLoop } from './scheduler-loop.js';

let h: (Harness & { manual: ManualClock | null }) | null = null;
let loops: { stop(): Promise<void> }[] = [];

afterEach(async () => {
  for (const l of loops) await l.stop();
  loops = [];
  await h?.close();
  h = null;
});

async function setup(nodeCount: number): Promise<{ h: Harness; clock: ManualClock; nodes: string[] }> {
  h = await startHarness({ manualClock: true });
  const nodes: string[] = [];
  for (let i = 1; i <= nodeCount; i++) nodes.push((await addNode(h.store, { hostname: `n${i}` })).ID);
  return { h, clock: h.manual!, nodes };
}

const assigned = (hh: Harness, serviceId: string): number => tasksOf(hh.store, serviceId).filter((t) => t.Status.State === 'assigned').length;

describe('creation bursts', () => {
  it('a scale-up committed over several transactions reaches each node in one commit, without a timer', async () => {
    const { h: hh, nodes } = await setup(8);
    const burst = new CreationBurst();
    const o = { store: hh.store, clock: hh.clock, logger: hh.logger };
    // 2 transactions of 1,000 in flight at once: 2,500 tasks take three, the third built once the first committed.
    const rep = new ReplicatedOrchestrator({ ...o, maxTxInFlight: 2, burst });
    const sched = new SchedulerLoop({ ...o, burst });
    loops = [rep, sched];
    const watch = hh.store.watch({ kinds: ['task'] });
    const versionsByNode = new Map<string, Set<number>>();
    const creations = new Set<number>();
    const seen = (ev: ChangeEvent): void => {
      if (ev.kind === 'task' && ev.action === 'create') creations.add(ev.version);
      if (ev.kind !== 'task' || ev.object.Status.State !== 'assigned' || ev.old?.Status.State === 'assigned') return;
      const set = versionsByNode.get(ev.object.NodeID) ?? new Set<number>();
      set.add(ev.version);
      versionsByNode.set(ev.object.NodeID, set);
    };
    try {
      rep.start();
      sched.start();
      const svc = await createService(hh.store, spec('burst', { replicas: 2_500 }));
      await waitFor('2,500 assigned', () => {
        for (let ev = watch.poll(); ev !== null; ev = watch.poll()) seen(ev);
        return assigned(hh, svc.ID) === 2_500;
      });
      for (let ev = watch.poll(); ev !== null; ev = watch.poll()) seen(ev);
    } finally {
      watch.close();
    }
    expect(creations.size).toBe(3);
    expect(burst.bursts).toBe(1);
    expect(burst.active).toBe(false);
    expect(sched.heldPasses).toBe(1);
    // Every node got its share of the burst, each in a single Raft entry (one assignment message).
    expect([...versionsByNode.keys()].sort()).toEqual([...nodes].sort());
    for (const [node, versions] of versionsByNode) expect({ node, entries: versions.size }).toEqual({ node, entries: 1 });
  });

  it('a lone task is placed at once: its burst ends with its one commit', async () => {
    const { h: hh } = await setup(2);
    const burst = new CreationBurst();
    const o = { store: hh.store, clock: hh.clock, logger: hh.logger };
    const rep = new ReplicatedOrchestrator({ ...o, burst });
    const sched = new SchedulerLoop({ ...o, burst });
    loops = [rep, sched];
    rep.start();
    sched.start();
    const svc = await createService(hh.store, spec('lone', { replicas: 1 }));
    await waitFor('the task assigned', () => assigned(hh, svc.ID) === 1);
    expect(burst.active).toBe(false);
  });

  it('a burst that does not end holds a pass for maxBurstHoldMs at most', async () => {
    const { h: hh, clock } = await setup(2);
    const burst = new CreationBurst();
    const sched = new SchedulerLoop({ store: hh.store, clock: hh.clock, logger: hh.logger, burst, maxBurstHoldMs: 1_000 });
    loops = [sched];
    sched.start();
    burst.hold(); // as if an orchestrator were still committing
    const svc = await createService(hh.store, spec('held', { replicas: 3 }));
    const nowIso = new Date(clock.now()).toISOString();
    await hh.store.update((tx) => {
      for (let slot = 1; slot <= 3; slot++) tx.create('task', newTask(svc, { slot, desired: 'running', nowIso }));
    });
    await waitFor('the scheduler loop waiting for the burst', () => sched.heldPasses === 1);
    clock.advance(999);
    await new Promise((r) => setTimeout(r, 50));
    expect(assigned(hh, svc.ID)).toBe(0);
    clock.advance(1);
    await waitFor('3 assigned once the hold ran out', () => assigned(hh, svc.ID) === 3);
    burst.release();
  });
});

describe('chunksByGroup', () => {
  it('keeps each group whole in one chunk where it fits, splits only a group larger than a chunk', () => {
    const g = (name: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${name}${i}`);
    expect(chunksByGroup([g('a', 3), g('b', 3), g('c', 2)], 5).map((c) => c.length)).toEqual([3, 5]);
    expect(chunksByGroup([g('a', 3), g('b', 3), g('c', 2)], 5)[1]).toEqual(['b0', 'b1', 'b2', 'c0', 'c1']);
    expect(chunksByGroup([g('a', 7), g('b', 1)], 5)).toEqual([['a0', 'a1', 'a2', 'a3', 'a4'], ['a5', 'a6', 'b0']]);
    expect(chunksByGroup([], 5)).toEqual([]);
  });
});
