// The replicated orchestrator, the restart supervisor and the scheduler loop over a real
// single-manager store, with simulated workers writing task status as the dispatcher would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import type { Task } from '../store/types.js';
import { ReplicatedOrchestrator } from './replicated.js';
import { RestartSupervisor } from './restart.js';
import { addNode, changeNode, createService, live, running, setTaskStatus, spec, startHarness, tasksOf, updateService, waitFor, type Harness } from './testing/harness.js';
import { SimWorkers } from './testing/sim-workers.js';

let h: Harness;
let loops: { stop(): Promise<void> }[] = [];
let sim: SimWorkers;
const nodes: string[] = [];

beforeAll(async () => {
  h = await startHarness();
  for (const name of ['n1', 'n2', 'n3']) nodes.push((await addNode(h.store, { hostname: name })).ID);
  const o = { store: h.store, clock: h.clock, logger: h.logger };
  const rep = new ReplicatedOrchestrator({ ...o, maxTxInFlight: 3 }); // big scale-ups overlap their transactions
  const sup = new RestartSupervisor(o);
  const sched = new SchedulerLoop(o);
  sim = new SimWorkers({ store: h.store });
  for (const l of [rep, sup, sched]) l.start();
  sim.start();
  loops = [rep, sup, sched, sim];
});

afterAll(async () => {
  for (const l of loops) await l.stop();
  await h?.close();
});

function perNode(tasks: readonly Task[]): number[] {
  return nodes.map((n) => tasks.filter((t) => t.NodeID === n).length);
}

describe('replicated services', () => {
  it('creates Replicas tasks in slots 1..N, all placed and running, spread over the nodes', async () => {
    const svc = await createService(h.store, spec('web', { replicas: 6 }));
    await waitFor('6 running tasks', () => running(h.store, svc.ID).length === 6);
    const ts = live(h.store, svc.ID);
    expect(ts.map((t) => t.Slot).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(perNode(ts)).toEqual([2, 2, 2]);
    expect(ts.every((t) => t.Spec.ContainerSpec?.Image === 'busybox:1')).toBe(true);
  });

  it('scales up into new slots and down by removing not-yet-running tasks first, then from the busiest node', async () => {
    const svc = await createService(h.store, spec('scale', { replicas: 2, image: 'busybox:hang' }));
    // hang: tasks get assigned but never start
    await waitFor('2 assigned', () => tasksOf(h.store, svc.ID).filter((t) => t.Status.State === 'assigned').length === 2);
    await updateService(h.store, svc.ID, (s) => ({ ...s, TaskTemplate: s.TaskTemplate, Mode: { Replicated: { Replicas: 3 } } }));
    await waitFor('3 live', () => live(h.store, svc.ID).length === 3);
    expect(live(h.store, svc.ID).map((t) => t.Slot).sort()).toEqual([1, 2, 3]);

  });

  it('scale down takes tasks from the nodes that run the most tasks of the service first', async () => {
    // Three tasks pinned to n1, then the pin dropped and a fourth added (it goes elsewhere).
    const pinned = { ContainerSpec: { Image: 'busybox:1' }, RestartPolicy: { Condition: 'any' as const, Delay: 0 }, Placement: { Constraints: ['node.hostname==n1'] } };
    const svc = await createService(h.store, spec('busy', { replicas: 3, TaskTemplate: pinned }));
    await waitFor('3 running on n1', () => running(h.store, svc.ID).filter((t) => t.NodeID === nodes[0]).length === 3);
    await updateService(h.store, svc.ID, (s) => ({ ...s, TaskTemplate: { ...pinned, Placement: {} }, Mode: { Replicated: { Replicas: 4 } } }));
    await waitFor('4 running', () => running(h.store, svc.ID).length === 4);
    expect(perNode(live(h.store, svc.ID))[0]).toBe(3);
    await updateService(h.store, svc.ID, (s) => ({ ...s, Mode: { Replicated: { Replicas: 2 } } }));
    await waitFor('2 live', () => live(h.store, svc.ID).length === 2);
    const after = perNode(live(h.store, svc.ID));
    expect(after[0]).toBe(1);
    expect(after.reduce((x, y) => x + y, 0)).toBe(2);
    expect(tasksOf(h.store, svc.ID).filter((t) => t.DesiredState === 'remove' && t.NodeID === nodes[0])).toHaveLength(2);
  });

  it('scale down of running tasks leaves the survivors spread over nodes', async () => {
    const svc = await createService(h.store, spec('mixed', { replicas: 2 }));
    await waitFor('2 running', () => running(h.store, svc.ID).length === 2);
    await updateService(h.store, svc.ID, (s) => ({ ...s, Mode: { Replicated: { Replicas: 4 } } }));
    await waitFor('4 live', () => live(h.store, svc.ID).length === 4);
    await waitFor('4 running', () => running(h.store, svc.ID).length === 4);
    await updateService(h.store, svc.ID, (s) => ({ ...s, Mode: { Replicated: { Replicas: 2 } } }));
    await waitFor('2 live', () => live(h.store, svc.ID).length === 2);
    // All four were running: two go, and the two survivors are on different nodes.
    const survivors = live(h.store, svc.ID);
    expect(new Set(survivors.map((t) => t.NodeID)).size).toBe(2);
  });

  it('scale down removes a task the scheduler could not place before any running one', async () => {
    const svc = await createService(h.store, spec('pendfirst', { replicas: 2, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Placement: { Constraints: ['node.labels.gpu==yes'] } } }));
    await waitFor('2 pending with a reason', () => tasksOf(h.store, svc.ID).filter((t) => t.Status.State === 'pending' && (t.Status.Err ?? '') !== '').length === 2);
    const reason = tasksOf(h.store, svc.ID)[0]!.Status.Err;
    expect(reason).toBe('no suitable node (constraint node.labels.gpu==yes not met on 3 nodes)');
    // Give n1 the label: one task is placed there, the other stays pending... both fit on n1 (no max replicas).
    await changeNode(h.store, nodes[0]!, (n) => ({ ...n, Spec: { ...n.Spec, Labels: { gpu: 'yes' } } }));
    await waitFor('2 running on n1', () => running(h.store, svc.ID).length === 2);
    expect(running(h.store, svc.ID).every((t) => t.NodeID === nodes[0])).toBe(true);
    await changeNode(h.store, nodes[0]!, (n) => ({ ...n, Spec: { ...n.Spec, Labels: {} } }));
    await updateService(h.store, svc.ID, (s) => ({ ...s, Mode: { Replicated: { Replicas: 3 } } }));
    await waitFor('third pending', () => tasksOf(h.store, svc.ID).some((t) => t.Slot === 3 && t.Status.State === 'pending' && (t.Status.Err ?? '') !== ''));
    await updateService(h.store, svc.ID, (s) => ({ ...s, Mode: { Replicated: { Replicas: 2 } } }));
    await waitFor('2 live', () => live(h.store, svc.ID).length === 2);
    expect(live(h.store, svc.ID).every((t) => t.Status.State === 'running')).toBe(true);
    const gone = tasksOf(h.store, svc.ID).find((t) => t.Slot === 3)!;
    expect(gone.DesiredState).toBe('remove');
    expect(gone.Status.State).toBe('shutdown');
  });

  it('service removal stops and removes every task', async () => {
    const svc = await createService(h.store, spec('gone', { replicas: 3 }));
    await waitFor('3 running', () => running(h.store, svc.ID).length === 3);
    await h.store.update((tx) => tx.delete('service', svc.ID));
    await waitFor('all desired remove and shut down', () => tasksOf(h.store, svc.ID).every((t) => t.DesiredState === 'remove' && t.Status.State === 'shutdown'));
  });

  it('a scale-up larger than one transaction (several in flight at once) fills every slot exactly once', async () => {
    const n = 2_500; // 1,000 new tasks per transaction: three transactions
    const svc = await createService(h.store, spec('big', { replicas: n, image: 'busybox:hang' }));
    await waitFor(`${n} live`, () => live(h.store, svc.ID).length >= n, 30_000);
    const slots = live(h.store, svc.ID).map((t) => t.Slot).sort((a, b) => a - b);
    expect(slots).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    await h.store.update((tx) => tx.delete('service', svc.ID));
    await waitFor('all desired remove', () => tasksOf(h.store, svc.ID).every((t) => t.DesiredState === 'remove'), 30_000);
  }, 60_000);
});

describe('restart policy and node failure', () => {
  it('condition any restarts a task that exits 0 in the same slot; the old one is shut down', async () => {
    const svc = await createService(h.store, spec('exiter', { replicas: 1 }));
    await waitFor('running', () => running(h.store, svc.ID).length === 1);
    const first = running(h.store, svc.ID)[0]!;
    await setTaskStatus(h.store, first.ID, 'complete', { ContainerStatus: { ExitCode: 0 } });
    await waitFor('replacement running', () => running(h.store, svc.ID).some((t) => t.ID !== first.ID));
    const old = h.store.get('task', first.ID)!;
    expect(old.DesiredState).toBe('shutdown');
    const repl = running(h.store, svc.ID)[0]!;
    expect(repl.Slot).toBe(first.Slot);
  });

  it('condition on-failure restarts failures but not a clean exit', async () => {
    const svc = await createService(h.store, spec('onfail', { replicas: 1, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, RestartPolicy: { Condition: 'on-failure', Delay: 0 } } }));
    await waitFor('running', () => running(h.store, svc.ID).length === 1);
    const a = running(h.store, svc.ID)[0]!;
    await setTaskStatus(h.store, a.ID, 'failed', { Err: 'task: non-zero exit (2)' });
    await waitFor('restarted after failure', () => running(h.store, svc.ID).some((t) => t.ID !== a.ID));
    const b = running(h.store, svc.ID)[0]!;
    await setTaskStatus(h.store, b.ID, 'complete');
    await waitFor('the completed task retired', () => h.store.get('task', b.ID)!.DesiredState === 'shutdown');
    expect(live(h.store, svc.ID)).toHaveLength(0);
    // The orchestrator counts the settled slot: no new task appears for it.
    const orch = loops[0] as ReplicatedOrchestrator;
    const passes = orch.passes;
    await updateService(h.store, svc.ID, (s) => ({ ...s, Labels: { touched: 'yes' } }));
    await waitFor('orchestrator looked again', () => orch.passes > passes);
    expect(live(h.store, svc.ID)).toHaveLength(0);
  });

  it('condition none never restarts', async () => {
    const svc = await createService(h.store, spec('norestart', { replicas: 2, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, RestartPolicy: { Condition: 'none' } } }));
    await waitFor('running', () => running(h.store, svc.ID).length === 2);
    const a = running(h.store, svc.ID)[0]!;
    await setTaskStatus(h.store, a.ID, 'failed', { Err: 'task: non-zero exit (1)' });
    await waitFor('retired', () => h.store.get('task', a.ID)!.DesiredState === 'shutdown');
    expect(live(h.store, svc.ID)).toHaveLength(1);
    expect(tasksOf(h.store, svc.ID)).toHaveLength(2);
  });

  it('MaxAttempts bounds the restarts of a slot', async () => {
    const svc = await createService(h.store, spec('crashy', { replicas: 1, image: 'busybox:bad', TaskTemplate: { ContainerSpec: { Image: 'busybox:bad' }, RestartPolicy: { Condition: 'any', Delay: 0, MaxAttempts: 3 } } }));
    await waitFor('4 attempts, then no more', () => {
      const ts = tasksOf(h.store, svc.ID);
      return ts.length === 4 && ts.every((t) => t.Status.State === 'failed' && t.DesiredState === 'shutdown');
    });
    expect(new Set(tasksOf(h.store, svc.ID).map((t) => t.Slot))).toEqual(new Set([1]));
    expect(tasksOf(h.store, svc.ID)[0]!.Status.Err).toBe('task: non-zero exit (1)');
  });

  it('a node going down: its tasks are orphaned and replaced on other nodes in the same slots', async () => {
    const svc = await createService(h.store, spec('survivor', { replicas: 3 }));
    await waitFor('3 running', () => running(h.store, svc.ID).length === 3);
    const victim = nodes[2]!;
    const onVictim = running(h.store, svc.ID).filter((t) => t.NodeID === victim);
    expect(onVictim).toHaveLength(1);
    sim.dead.add(victim);
    await changeNode(h.store, victim, (n) => ({ ...n, Status: { ...n.Status, State: 'down' } }));
    await waitFor('3 running again, none on the dead node', () => {
      const r = running(h.store, svc.ID);
      return r.length === 3 && r.every((t) => t.NodeID !== victim);
    });
    const old = h.store.get('task', onVictim[0]!.ID)!;
    expect(old.Status.State).toBe('orphaned');
    expect(old.DesiredState).toBe('shutdown');
    expect(running(h.store, svc.ID).map((t) => t.Slot).sort()).toEqual([1, 2, 3]);
    sim.dead.delete(victim);
    await changeNode(h.store, victim, (n) => ({ ...n, Status: { ...n.Status, State: 'ready' } }));
  });
});

describe('scheduler loop', () => {
  it('places pending tasks, records why others cannot be placed, and places them when room appears', async () => {
    const big = 6 * 2 ** 30;
    const svc = await createService(
      h.store,
      spec('hungry', { replicas: 5, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Resources: { Reservations: { MemoryBytes: big } } } }),
    );
    await waitFor('3 running, 2 pending with a reason', () => {
      const ts = tasksOf(h.store, svc.ID);
      return ts.filter((t) => t.Status.State === 'running').length === 3 && ts.filter((t) => t.Status.State === 'pending' && (t.Status.Err ?? '') !== '').length === 2;
    });
    const pending = tasksOf(h.store, svc.ID).filter((t) => t.Status.State === 'pending');
    expect(pending[0]!.Status.Err).toBe('no suitable node (insufficient memory on 3 nodes)');
    expect(pending[0]!.Status.Message).toBe('pending task scheduling');
    expect(pending[0]!.NodeID).toBe('');
    // A new node with room: the pending tasks land there (one each on a 16 GiB node: both).
    const n4 = await addNode(h.store, { hostname: 'n4', memoryBytes: 16 * 2 ** 30 });
    await waitFor('5 running', () => running(h.store, svc.ID).length === 5);
    expect(running(h.store, svc.ID).filter((t) => t.NodeID === n4.ID)).toHaveLength(2);
    expect(running(h.store, svc.ID).every((t) => (t.Status.Err ?? '') === '')).toBe(true);
    await h.store.update((tx) => tx.delete('service', svc.ID));
    await waitFor('stopped', () => tasksOf(h.store, svc.ID).every((t) => t.Status.State === 'shutdown'));
    await changeNode(h.store, n4.ID, (n) => ({ ...n, Spec: { ...n.Spec, Availability: 'drain' } }));
  });
});
