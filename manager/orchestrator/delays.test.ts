// Delays driven by a manual clock (no wall-clock waits decide anything): restart delay, restart
// attempts within a window, update delay and monitor period.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import type { ManualClock } from './clock.js';
import { Orchestrators } from './index.js';
import { addNode, createService, live, running, setTaskStatus, spec, startHarness, tasksOf, updateService, waitFor, type Harness, startControlPlane, stopControlPlane } from './testing/harness.js';
import { SimWorkers } from './testing/sim-workers.js';

let h: Harness;
let clock: ManualClock;
let orch: Orchestrators;
let sched: SchedulerLoop;
let sim: SimWorkers;
const S = 1_000_000_000;

beforeAll(async () => {
  const started = await startHarness({ manualClock: true });
  h = started;
  clock = started.manual!;
  for (const name of ['n1', 'n2']) await addNode(h.store, { hostname: name });
  ({ orch, sched, sim } = startControlPlane(h, clock));
});

afterAll(async () => {
  await stopControlPlane({ orch, sched, sim });
  await h?.close();
});

/** Lets the loops and the simulated workers react to what just happened (a few round trips through the store). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const v = h.store.version;
    await new Promise((r) => setTimeout(r, 30));
    if (h.store.version === v) return;
  }
}

describe('restart delay', () => {
  it('the replacement waits, prepared (desired READY), until the delay has passed', async () => {
    const svc = await createService(h.store, spec('slow', { TaskTemplate: { ContainerSpec: { Image: 'x:1' }, RestartPolicy: { Condition: 'any', Delay: 10 * S } } }));
    await waitFor('running', () => running(h.store, svc.ID).length === 1);
    const first = running(h.store, svc.ID)[0]!;
    await setTaskStatus(h.store, first.ID, 'failed', { Err: 'task: non-zero exit (1)' });
    await waitFor('replacement prepared on a node', () => tasksOf(h.store, svc.ID).some((t) => t.ID !== first.ID && t.Status.State === 'ready'));
    const repl = tasksOf(h.store, svc.ID).find((t) => t.ID !== first.ID)!;
    expect(repl.DesiredState).toBe('ready');
    clock.advance(9_999);
    await settle();
    expect(h.store.get('task', repl.ID)!.DesiredState).toBe('ready');
    clock.advance(1);
    await waitFor('replacement running', () => h.store.get('task', repl.ID)!.Status.State === 'running');
    expect(h.store.get('task', repl.ID)!.DesiredState).toBe('running');
  });

  it('MaxAttempts counts restarts within Window only', async () => {
    const svc = await createService(h.store, spec('windowed', { TaskTemplate: { ContainerSpec: { Image: 'x:1' }, RestartPolicy: { Condition: 'any', Delay: 0, MaxAttempts: 1, Window: 60 * S } } }));
    const failCurrent = async (): Promise<void> => {
      await waitFor('one running', () => running(h.store, svc.ID).length === 1);
      await setTaskStatus(h.store, running(h.store, svc.ID)[0]!.ID, 'failed', { Err: 'task: non-zero exit (1)' });
    };
    await failCurrent(); // restart 1
    clock.advance(61_000); // outside the window: the first restart no longer counts
    await failCurrent(); // restart 2
    await waitFor('restarted again', () => running(h.store, svc.ID).length === 1 && tasksOf(h.store, svc.ID).length === 3);
    await failCurrent(); // within the window of restart 2: no more
    await waitFor('settled', () => tasksOf(h.store, svc.ID).every((t) => t.DesiredState === 'shutdown'));
    await settle();
    expect(tasksOf(h.store, svc.ID)).toHaveLength(3);
    expect(live(h.store, svc.ID)).toHaveLength(0);
  });
});

describe('update delay and monitor', () => {
  it('waits Delay between batches and Monitor before completing', async () => {
    const svc = await createService(h.store, spec('paced', { replicas: 2, image: 'p:1', UpdateConfig: { Parallelism: 1, Delay: 30 * S, Monitor: 5 * S } }));
    await waitFor('2 running', () => running(h.store, svc.ID).length === 2);
    await updateService(h.store, svc.ID, (s) => ({ ...s, TaskTemplate: { ...s.TaskTemplate, ContainerSpec: { Image: 'p:2' } } }));
    await waitFor('first slot running p:2', () => running(h.store, svc.ID).filter((t) => t.Spec.ContainerSpec?.Image === 'p:2').length === 1);
    await waitFor('the updater waits on the clock', () => clock.pending > 0);
    await settle();
    expect(tasksOf(h.store, svc.ID).filter((t) => t.Spec.ContainerSpec?.Image === 'p:2')).toHaveLength(1);
    expect(h.store.get('service', svc.ID)!.UpdateStatus?.State).toBe('updating');
    clock.advance(30_000);
    await waitFor('second slot running p:2', () => running(h.store, svc.ID).filter((t) => t.Spec.ContainerSpec?.Image === 'p:2').length === 2);
    await waitFor('monitor timer', () => clock.pending > 0);
    await settle();
    expect(h.store.get('service', svc.ID)!.UpdateStatus?.State).toBe('updating');
    clock.advance(5_000);
    await waitFor('completed', () => h.store.get('service', svc.ID)!.UpdateStatus?.State === 'completed');
  });
});
