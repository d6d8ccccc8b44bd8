// Rolling updates over a real single-manager store: parallelism, stop-first and start-first,
// a failing new version rolled back automatically, pause, and a manual rollback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import type { ServiceSpec, Task } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { Orchestrators } from './index.js';
import { addNode, createService, live, running, spec, startHarness, tasksOf, updateService, waitFor, type Harness, startControlPlane, stopControlPlane } from './testing/harness.js';
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

const MS = 1_000_000;
const image = (t: Task): string => t.Spec.ContainerSpec?.Image ?? '';
const withImage = (s: ServiceSpec, img: string): ServiceSpec => ({ ...s, TaskTemplate: { ...s.TaskTemplate, ContainerSpec: { ...s.TaskTemplate.ContainerSpec, Image: img } } });

function collect(serviceId: string): { events: ChangeEvent[]; stop: () => ChangeEvent[] } {
  const w = h.store.watch({ kinds: ['task'], filter: (ev) => ev.kind === 'task' && ev.object.ServiceID === serviceId });
  const events: ChangeEvent[] = [];
  return {
    events,
    stop: () => {
      for (let ev = w.poll(); ev !== null; ev = w.poll()) events.push(ev);
      w.close();
      return events;
    },
  };
}

describe('rolling update', () => {
  it('stop-first with parallelism 2: batches of 2, old task stopped before its replacement starts, status completed', async () => {
    const svc = await createService(h.store, spec('web', { replicas: 6, image: 'web:1', UpdateConfig: { Parallelism: 2, Monitor: 50 * MS, Order: 'stop-first' } }));
    await waitFor('6 running', () => running(h.store, svc.ID).length === 6);
    const rec = collect(svc.ID);
    await updateService(h.store, svc.ID, (s) => withImage(s, 'web:2'));
    await waitFor('update completed', () => h.store.get('service', svc.ID)!.UpdateStatus?.State === 'completed');
    const events = rec.stop();
    expect(running(h.store, svc.ID).map(image)).toEqual(Array(6).fill('web:2'));
    expect(live(h.store, svc.ID)).toHaveLength(6);
    const st = h.store.get('service', svc.ID)!.UpdateStatus!;
    expect(st.Message).toBe('update completed');
    expect(st.StartedAt! <= st.CompletedAt!).toBe(true);
    // New tasks came in transactions of 2.
    const creates = events.filter((e) => e.action === 'create');
    expect(creates).toHaveLength(6);
    const perTx = new Map<number, number>();
    for (const e of creates) perTx.set(e.version, (perTx.get(e.version) ?? 0) + 1);
    expect([...perTx.values()]).toEqual([2, 2, 2]);
    // A batch starts only when the previous one runs: batch k+1 is created after batch k's tasks reached running.
    const versions = [...perTx.keys()];
    for (let b = 1; b < versions.length; b++) {
      const prevIds = creates.filter((e) => e.version === versions[b - 1]).map((e) => e.object.ID);
      const ranAt = prevIds.map((id) => events.find((e) => e.object.ID === id && (e.object as Task).Status.State === 'running')!.version);
      expect(Math.max(...ranAt)).toBeLessThan(versions[b]!);
    }
    // Stop-first: each replacement was created desired READY and promoted only after the old task reported shutdown.
    for (const c of creates) {
      const t = c.object as Task;
      expect(t.DesiredState).toBe('ready');
      const promoted = events.find((e) => e.object.ID === t.ID && (e.object as Task).DesiredState === 'running')!.version;
      const oldStopped = events.find((e) => {
        const o = e.object as Task;
        return o.Slot === t.Slot && o.ID !== t.ID && o.Status.State === 'shutdown' && e.version >= c.version;
      })!.version;
      expect(oldStopped).toBeLessThanOrEqual(promoted);
    }
  });

  it('start-first: the replacement runs before the old task is told to stop', async () => {
    const svc = await createService(h.store, spec('api', { replicas: 2, image: 'api:1', UpdateConfig: { Parallelism: 1, Monitor: 50 * MS, Order: 'start-first' } }));
    await waitFor('2 running', () => running(h.store, svc.ID).length === 2);
    const olds = running(h.store, svc.ID);
    const rec = collect(svc.ID);
    await updateService(h.store, svc.ID, (s) => withImage(s, 'api:2'));
    await waitFor('update completed', () => h.store.get('service', svc.ID)!.UpdateStatus?.State === 'completed');
    const events = rec.stop();
    for (const o of olds) {
      const stopAt = events.find((e) => e.object.ID === o.ID && (e.object as Task).DesiredState === 'shutdown')!.version;
      const repl = events.find((e) => e.action === 'create' && (e.object as Task).Slot === o.Slot)!;
      expect((repl.object as Task).DesiredState).toBe('running');
      const ranAt = events.find((e) => e.object.ID === repl.object.ID && (e.object as Task).Status.State === 'running')!.version;
      expect(ranAt).toBeLessThan(stopAt);
    }
    expect(running(h.store, svc.ID).map(image)).toEqual(['api:2', 'api:2']);
  });

  it('a failing new version is rolled back automatically to the previous spec', async () => {
    const svc = await createService(
      h.store,
      spec('shop', {
        replicas: 4,
        image: 'shop:1',
        UpdateConfig: { Parallelism: 1, Monitor: 200 * MS, FailureAction: 'rollback', MaxFailureRatio: 0 },
        RollbackConfig: { Parallelism: 0, Monitor: 50 * MS },
      }),
    );
    await waitFor('4 running', () => running(h.store, svc.ID).length === 4);
    await updateService(h.store, svc.ID, (s) => withImage(s, 'shop:bad'));
    await waitFor('rollback completed', () => h.store.get('service', svc.ID)!.UpdateStatus?.State === 'rollback_completed', 20_000);
    const after = h.store.get('service', svc.ID)!;
    expect(after.Spec.TaskTemplate.ContainerSpec?.Image).toBe('shop:1');
    expect(after.PreviousSpec).toBeUndefined();
    expect(after.UpdateStatus!.Message).toBe('rollback completed');
    await waitFor('4 running shop:1', () => running(h.store, svc.ID).filter((t) => image(t) === 'shop:1').length === 4);
    expect(live(h.store, svc.ID).every((t) => image(t) === 'shop:1')).toBe(true);
    // Only the first slot was tried with the bad image before the rollback.
    const bad = tasksOf(h.store, svc.ID).filter((t) => image(t) === 'shop:bad');
    expect(bad.length).toBeGreaterThan(0);
    expect(new Set(bad.map((t) => t.Slot)).size).toBe(1);
    expect(bad.every((t) => t.Status.State === 'failed' || t.Status.State === 'shutdown')).toBe(true);
  });

  it('failure action pause stops the update with a message; the rest keep the old version', async () => {
    const svc = await createService(h.store, spec('cms', { replicas: 3, image: 'cms:1', UpdateConfig: { Parallelism: 1, Monitor: 200 * MS, FailureAction: 'pause' }, RollbackConfig: { Monitor: 50 * MS } }));
    await waitFor('3 running', () => running(h.store, svc.ID).length === 3);
    await updateService(h.store, svc.ID, (s) => withImage(s, 'cms:bad'));
    await waitFor('paused', () => h.store.get('service', svc.ID)!.UpdateStatus?.State === 'paused');
    const st = h.store.get('service', svc.ID)!.UpdateStatus!;
    expect(st.Message).toMatch(/^update paused due to failure or early termination of task [0-9a-z]{25}$/);
    expect(running(h.store, svc.ID).filter((t) => image(t) === 'cms:1')).toHaveLength(2);

    // `docker service rollback`: the control API swaps the specs and marks rollback_started.
    await h.store.update((tx) => {
      const cur = tx.get('service', svc.ID)!;
      tx.update('service', { ...cur, Spec: cur.PreviousSpec!, PreviousSpec: cur.Spec, UpdateStatus: { State: 'rollback_started', Message: 'manually requested rollback', StartedAt: new Date().toISOString() } });
    });
    await waitFor('rollback completed', () => h.store.get('service', svc.ID)!.UpdateStatus?.State === 'rollback_completed');
    await waitFor('3 running cms:1', () => running(h.store, svc.ID).filter((t) => image(t) === 'cms:1').length === 3);
  });

  it('MaxFailureRatio tolerates failures up to the ratio; continue never stops', async () => {
    const slotsTried = (id: string): number => new Set(tasksOf(h.store, id).filter((t) => image(t) === 'r:bad').map((t) => t.Slot)).size;
    const ratio = await createService(h.store, spec('ratio', { replicas: 4, image: 'r:1', UpdateConfig: { Parallelism: 1, Monitor: 100 * MS, FailureAction: 'pause', MaxFailureRatio: 0.5 } }));
    const cont = await createService(h.store, spec('cont', { replicas: 4, image: 'r:1', UpdateConfig: { Parallelism: 1, Monitor: 50 * MS, FailureAction: 'continue' } }));
    await waitFor('8 running', () => running(h.store, ratio.ID).length + running(h.store, cont.ID).length === 8);
    await updateService(h.store, ratio.ID, (s) => withImage(s, 'r:bad'));
    await updateService(h.store, cont.ID, (s) => withImage(s, 'r:bad'));
    // 1/4 and 2/4 failed are within 0.5; the third failure (3/4) pauses.
    await waitFor('ratio paused', () => h.store.get('service', ratio.ID)!.UpdateStatus?.State === 'paused');
    expect(slotsTried(ratio.ID)).toBe(3);
    expect(running(h.store, ratio.ID).filter((t) => image(t) === 'r:1')).toHaveLength(1);
    await waitFor('continue completed', () => h.store.get('service', cont.ID)!.UpdateStatus?.State === 'completed');
    expect(slotsTried(cont.ID)).toBe(4);
    // Their bad tasks crash-loop (restart any, no delay): remove them so the next test runs quietly.
    await h.store.update((tx) => {
      tx.delete('service', ratio.ID);
      tx.delete('service', cont.ID);
    });
  });

  it('global services update node by node', async () => {
    const svc = await createService(h.store, spec('logs', { image: 'logs:1', Mode: { Global: {} }, UpdateConfig: { Parallelism: 1, Monitor: 20 * MS } }));
    await waitFor('3 running', () => running(h.store, svc.ID).length === 3);
    await updateService(h.store, svc.ID, (s) => withImage(s, 'logs:2'));
    await waitFor('update completed', () => h.store.get('service', svc.ID)!.UpdateStatus?.State === 'completed');
    await waitFor('3 running logs:2', () => running(h.store, svc.ID).filter((t) => image(t) === 'logs:2').length === 3);
    expect(new Set(running(h.store, svc.ID).map((t) => t.NodeID)).size).toBe(3);
    expect(live(h.store, svc.ID)).toHaveLength(3);
  });
});
