// The global orchestrator and the task reaper over a real single-manager store, with simulated
// workers reporting task status.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import type { Node } from '../store/types.js';
import { Orchestrators } from './index.js';
import { addNode, changeNode, createService, live, running, spec, startHarness, tasksOf, waitFor, type Harness, startControlPlane, stopControlPlane } from './testing/harness.js';
import { SimWorkers } from './testing/sim-workers.js';

let h: Harness;
let orch: Orchestrators;
let sched: SchedulerLoop;
let sim: SimWorkers;
const n: Record<string, Node> = {};

beforeAll(async () => {
  h = await startHarness();
  n['n1'] = await addNode(h.store, { hostname: 'n1' });
  n['n2'] = await addNode(h.store, { hostname: 'n2' });
  n['n3'] = await addNode(h.store, { hostname: 'n3', availability: 'drain' });
  await h.store.update((tx) => tx.create('cluster', { Spec: { Name: 'default', Orchestration: { TaskHistoryRetentionLimit: 3 } } }));
  ({ orch, sched, sim } = startControlPlane(h));
});

afterAll(async () => {
  await stopControlPlane({ orch, sched, sim });
  await h?.close();
});

const globalSpec = (name: string, constraints: string[] = []) =>
  spec(name, { Mode: { Global: {} }, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, RestartPolicy: { Delay: 0 }, Placement: { Constraints: constraints } } });

function runningNodes(serviceId: string): string[] {
  return running(h.store, serviceId)
    .map((t) => h.store.get('node', t.NodeID)!.Description!.Hostname!)
    .sort();
}

describe('global services', () => {
  it('one task per eligible node; follows joins, drains and reactivation', async () => {
    const svc = await createService(h.store, globalSpec('agent'));
    await waitFor('running on n1 and n2', () => runningNodes(svc.ID).join() === 'n1,n2');
    expect(tasksOf(h.store, svc.ID).every((t) => t.Slot === 0)).toBe(true);

    n['n4'] = await addNode(h.store, { hostname: 'n4' });
    await waitFor('a task on the new node', () => runningNodes(svc.ID).join() === 'n1,n2,n4');

    await changeNode(h.store, n['n1']!.ID, (x) => ({ ...x, Spec: { ...x.Spec, Availability: 'drain' } }));
    await waitFor('n1 task shut down', () =>
      tasksOf(h.store, svc.ID)
        .filter((t) => t.NodeID === n['n1']!.ID)
        .every((t) => t.DesiredState === 'shutdown' && t.Status.State === 'shutdown'),
    );
    expect(runningNodes(svc.ID).join()).toBe('n2,n4');

    await changeNode(h.store, n['n3']!.ID, (x) => ({ ...x, Spec: { ...x.Spec, Availability: 'active' } }));
    await changeNode(h.store, n['n1']!.ID, (x) => ({ ...x, Spec: { ...x.Spec, Availability: 'active' } }));
    await waitFor('back on n1, and on n3', () => runningNodes(svc.ID).join() === 'n1,n2,n3,n4');
    // Pause keeps what runs and starts nothing new.
    const passes = orch.global.passes;
    await changeNode(h.store, n['n3']!.ID, (x) => ({ ...x, Spec: { ...x.Spec, Availability: 'pause' } }));
    await waitFor('global looked at the change', () => orch.global.passes > passes);
    expect(runningNodes(svc.ID).join()).toBe('n1,n2,n3,n4');
    await changeNode(h.store, n['n3']!.ID, (x) => ({ ...x, Spec: { ...x.Spec, Availability: 'active' } }));
  });

  it('follows label changes against the constraints', async () => {
    const passes = orch.global.passes;
    const svc = await createService(h.store, globalSpec('db', ['node.labels.role==db']));
    await waitFor('global looked', () => orch.global.passes > passes);
    expect(live(h.store, svc.ID)).toHaveLength(0);
    await changeNode(h.store, n['n2']!.ID, (x) => ({ ...x, Spec: { ...x.Spec, Labels: { role: 'db' } } }));
    await waitFor('running on n2', () => runningNodes(svc.ID).join() === 'n2');
    await changeNode(h.store, n['n2']!.ID, (x) => ({ ...x, Spec: { ...x.Spec, Labels: { role: 'web' } } }));
    await waitFor('shut down', () => live(h.store, svc.ID).length === 0 && tasksOf(h.store, svc.ID).every((t) => t.Status.State === 'shutdown'));
  });

  it('a node going down: its task is orphaned, not moved; a new one starts when the node is back', async () => {
    const svc = await createService(h.store, globalSpec('mon'));
    await waitFor('4 running', () => runningNodes(svc.ID).length === 4);
    const victim = n['n4']!.ID;
    sim.dead.add(victim);
    await changeNode(h.store, victim, (x) => ({ ...x, Status: { ...x.Status, State: 'down' } }));
    await waitFor('orphaned', () => tasksOf(h.store, svc.ID).some((t) => t.NodeID === victim && t.Status.State === 'orphaned'));
    expect(live(h.store, svc.ID)).toHaveLength(3);
    expect(runningNodes(svc.ID).join()).toBe('n1,n2,n3');
    sim.dead.delete(victim);
    await changeNode(h.store, victim, (x) => ({ ...x, Status: { ...x.Status, State: 'ready' } }));
    await waitFor('back on n4', () => runningNodes(svc.ID).join() === 'n1,n2,n3,n4');
    expect(tasksOf(h.store, svc.ID).filter((t) => t.NodeID === victim)).toHaveLength(2);
  });

  it('a node removed from the swarm: its task is orphaned and nothing replaces it', async () => {
    const gone = await addNode(h.store, { hostname: 'n5' });
    const svc = await createService(h.store, globalSpec('probe'));
    await waitFor('running on n5 too', () => runningNodes(svc.ID).includes('n5'));
    sim.dead.add(gone.ID);
    await h.store.update((tx) => tx.delete('node', gone.ID));
    await waitFor('orphaned', () => tasksOf(h.store, svc.ID).some((t) => t.NodeID === gone.ID && t.Status.State === 'orphaned' && t.DesiredState === 'shutdown'));
    expect(live(h.store, svc.ID).every((t) => t.NodeID !== gone.ID)).toBe(true);
    expect(live(h.store, svc.ID)).toHaveLength(4);
  });
});

describe('task reaper', () => {
  it('keeps TaskHistoryRetentionLimit tasks per slot, deleting the oldest finished ones', async () => {
    const created = h.store.watch({ kinds: ['task'], actions: ['create'] });
    const svc = await createService(
      h.store,
      spec('crashloop', { TaskTemplate: { ContainerSpec: { Image: 'busybox:bad' }, RestartPolicy: { Condition: 'any', Delay: 0, MaxAttempts: 7 }, Placement: { Constraints: ['node.hostname==n2'] } } }),
    );
    await waitFor('restarts exhausted with 3 tasks kept', () => {
      const ts = tasksOf(h.store, svc.ID);
      return ts.length === 3 && ts.every((t) => t.Status.State === 'failed' && t.DesiredState === 'shutdown');
    });
    // 8 tasks were made (1 + 7 restarts); the 3 kept are the 3 made last.
    const made: string[] = [];
    for (let ev = created.poll(); ev !== null; ev = created.poll()) if (ev.kind === 'task' && ev.object.ServiceID === svc.ID) made.push(ev.object.ID);
    created.close();
    expect(made).toHaveLength(8);
    expect(tasksOf(h.store, svc.ID).map((t) => t.ID).sort()).toEqual(made.slice(5).sort());
  });

  it('deletes the tasks of removed slots and deleted services once they stopped', async () => {
    const svc = await createService(h.store, spec('temp', { replicas: 3 }));
    await waitFor('3 running', () => running(h.store, svc.ID).length === 3);
    await h.store.update((tx) => {
      const s = tx.get('service', svc.ID)!;
      tx.update('service', { ...s, Spec: { ...s.Spec, Mode: { Replicated: { Replicas: 1 } } } });
    });
    await waitFor('2 reaped', () => tasksOf(h.store, svc.ID).length === 1);
    await h.store.update((tx) => tx.delete('service', svc.ID));
    await waitFor('all reaped', () => tasksOf(h.store, svc.ID).length === 0);
  });
});
