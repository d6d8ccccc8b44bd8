// Every loop survives losing its watch: with a watch ring of 16 events, one transaction of 60
// new tasks overruns every subscriber (WatchOverflowError); each re-lists and carries on, and the
// result is exactly what it would have been: no task lost, none doubled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import { Orchestrators } from './index.js';
import { addNode, createService, live, running, spec, startHarness, updateService, waitFor, type Harness, startControlPlane, stopControlPlane } from './testing/harness.js';
import { SimWorkers } from './testing/sim-workers.js';

let h: Harness;
let orch: Orchestrators;
let sched: SchedulerLoop;
let sim: SimWorkers;

beforeAll(async () => {
  h = await startHarness({ watchRingEvents: 16 });
  for (const name of ['n1', 'n2', 'n3']) await addNode(h.store, { hostname: name });
  ({ orch, sched, sim } = startControlPlane(h));
});

afterAll(async () => {
  await stopControlPlane({ orch, sched, sim });
  await h?.close();
});

describe('resync', () => {
  it('converges after watch overflows, without duplicates', async () => {
    const svc = await createService(h.store, spec('many', { replicas: 60 }));
    await waitFor('60 running', () => running(h.store, svc.ID).length === 60, 20_000);
    expect(live(h.store, svc.ID)).toHaveLength(60);
    expect(new Set(live(h.store, svc.ID).map((t) => t.Slot)).size).toBe(60);
    await updateService(h.store, svc.ID, (s) => ({ ...s, Mode: { Replicated: { Replicas: 20 } } }));
    await waitFor('20 live', () => live(h.store, svc.ID).length === 20, 20_000);
    await waitFor('20 running', () => running(h.store, svc.ID).length === 20, 20_000);
    // The overflow did happen (to the scheduler loop, which reads every task event).
    expect(sched.resyncs).toBeGreaterThan(0);
    expect(orch.replicated.resyncs + orch.restarts.resyncs + orch.reaper.resyncs + orch.updater.resyncs).toBeGreaterThan(0);
  });
});
