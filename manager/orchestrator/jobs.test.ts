// Jobs over a real single-manager store: replicated jobs (total completions, max concurrent),
// global jobs, completed tasks never restarted, failures restarted, a template change re-runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import type { Task } from '../store/types.js';
import { Orchestrators, type JobService } from './index.js';
import { addNode, createService, setTaskStatus, spec, startHarness, tasksOf, waitFor, type Harness, startControlPlane, stopControlPlane } from './testing/harness.js';
import { SimWorkers } from './testing/sim-workers.js';

let h: Harness;
let orch: Orchestrators;
let sched: SchedulerLoop;
let sim: SimWorkers;

beforeAll(async () => {
  h = await startHarness();
  for (const name of ['n1', 'n2', 'n3']) await addNode(h.store, { hostname: name });
  ({ orch, sched, sim } = startControlPlane(h));
});

afterAll(async () => {
  await stopControlPlane({ orch, sched, sim });
  await h?.close();
});

const complete = (serviceId: string): Task[] => tasksOf(h.store, serviceId).filter((t) => t.Status.State === 'complete');

describe('replicated jobs', () => {
  it('runs TotalCompletions tasks, at most MaxConcurrent at a time, and never restarts completed ones', async () => {
    const w = h.store.watch({ kinds: ['task'] });
    const svc = await createService(
      h.store,
      spec('batch', { image: 'job:exit0', Mode: { ReplicatedJob: { TotalCompletions: 5, MaxConcurrent: 2 } } }),
    );
    await waitFor('5 complete', () => complete(svc.ID).length === 5);
    expect(tasksOf(h.store, svc.ID)).toHaveLength(5);
    expect(tasksOf(h.store, svc.ID).map((t) => t.Slot).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(tasksOf(h.store, svc.ID).every((t) => t.DesiredState === 'complete')).toBe(true);
    const js = (h.store.get('service', svc.ID) as JobService).JobStatus!;
    expect(tasksOf(h.store, svc.ID).every((t) => t.JobIteration?.Index === js.JobIteration.Index)).toBe(true);
    // Replay: never more than 2 of its tasks unfinished at once.
    const state = new Map<string, Task>();
    let most = 0;
    for (let ev = w.poll(); ev !== null; ev = w.poll()) {
      if (ev.kind !== 'task' || ev.object.ServiceID !== svc.ID) continue;
      state.set(ev.object.ID, ev.object);
      most = Math.max(most, [...state.values()].filter((t) => t.Status.State !== 'complete' && t.Status.State !== 'failed').length);
    }
    w.close();
    expect(most).toBe(2);
  });

  it('a failed job task is restarted in its slot (restart on failure); a template change runs the job again', async () => {
    // "hang": the simulated worker leaves its tasks assigned; the test reports for them.
    const svc = await createService(h.store, spec('flaky', { image: 'job:hang', Mode: { ReplicatedJob: { TotalCompletions: 1 } } }));
    await waitFor('first task assigned', () => tasksOf(h.store, svc.ID).some((t) => t.Status.State === 'assigned'));
    const first = tasksOf(h.store, svc.ID)[0]!;
    await setTaskStatus(h.store, first.ID, 'failed', { Err: 'task: non-zero exit (3)' });
    await waitFor('replacement assigned', () => tasksOf(h.store, svc.ID).some((t) => t.ID !== first.ID && t.Status.State === 'assigned'));
    expect(h.store.get('task', first.ID)!.DesiredState).toBe('shutdown');
    const second = tasksOf(h.store, svc.ID).find((t) => t.ID !== first.ID)!;
    expect(second.Slot).toBe(first.Slot);
    expect(second.DesiredState).toBe('complete');
    await setTaskStatus(h.store, second.ID, 'running');
    await setTaskStatus(h.store, second.ID, 'complete', { ContainerStatus: { ExitCode: 0 } });
    await waitFor('1 complete', () => complete(svc.ID).length === 1);
    expect(tasksOf(h.store, svc.ID)).toHaveLength(2);
    // A new iteration: the template changes (image and ForceUpdate, as `docker service update --force --image`).
    const before = (h.store.get('service', svc.ID) as JobService).JobStatus!.JobIteration.Index;
    await h.store.update((tx) => {
      const s = tx.get('service', svc.ID)!;
      tx.update('service', { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, ContainerSpec: { Image: 'job:exit0' }, ForceUpdate: 1 } } });
    });
    await waitFor('2 complete (one per iteration)', () => complete(svc.ID).length === 2);
    const after = (h.store.get('service', svc.ID) as JobService).JobStatus!.JobIteration.Index;
    expect(after).toBeGreaterThan(before);
    expect(complete(svc.ID).map((t) => t.JobIteration?.Index).sort()).toEqual([before, after].sort());
  });
});

describe('global jobs', () => {
  it('one task per eligible node, each run once, and on nodes that join later', async () => {
    const svc = await createService(h.store, spec('everywhere', { image: 'job:exit0', Mode: { GlobalJob: {} } }));
    await waitFor('3 complete', () => complete(svc.ID).length === 3);
    expect(new Set(complete(svc.ID).map((t) => t.NodeID)).size).toBe(3);
    const n4 = await addNode(h.store, { hostname: 'n4' });
    await waitFor('4 complete', () => complete(svc.ID).length === 4);
    expect(complete(svc.ID).filter((t) => t.NodeID === n4.ID)).toHaveLength(1);
    expect(tasksOf(h.store, svc.ID)).toHaveLength(4);
  });
});
