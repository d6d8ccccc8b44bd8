// Leader failover in the middle of a rolling update, on three real managers in one process: the
// new leader's orchestrators pick the update up from the store (UpdateStatus "updating", the
// slots still dirty) and finish it, with no slot doubled.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import type { MemoryStore } from '../store/memory-store.js';
import { StoreCluster, waitFor } from '../store/testing/cluster.js';
import { systemClock } from './clock.js';
import { Orchestrators } from './index.js';
import { addNode, createService, live, running, spec, updateService } from './testing/harness.js';
import { SimWorkers } from './testing/sim-workers.js';

const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });
let cluster: StoreCluster;
let stack: { stop(): Promise<void> } | null = null;

/** What the manager runtime does when a manager becomes leader. */
function lead(store: MemoryStore): { stop(): Promise<void> } {
  const orch = new Orchestrators({ store, logger, clock: systemClock });
  const sched = new SchedulerLoop({ store, logger, clock: systemClock });
  const sim = new SimWorkers({ store });
  orch.start();
  sched.start();
  sim.start();
  return {
    stop: async () => {
      await sim.stop();
      await sched.stop();
      await orch.stop();
    },
  };
}

beforeAll(async () => {
  cluster = await StoreCluster.start({ size: 3 });
});

afterAll(async () => {
  await stack?.stop();
  await cluster?.close();
});

describe('leader failover', () => {
  it('an update interrupted by a leader change completes under the new leader', async () => {
    const first = await cluster.waitLeader();
    let store = first.store;
    for (const name of ['n1', 'n2', 'n3']) await addNode(store, { hostname: name });
    stack = lead(store);
    const svc = await createService(store, spec('web', { replicas: 4, image: 'web:1', UpdateConfig: { Parallelism: 1, Monitor: 100_000_000 } }));
    await waitFor('4 running', () => running(store, svc.ID).length === 4, 20_000);
    await updateService(store, svc.ID, (s) => ({ ...s, TaskTemplate: { ...s.TaskTemplate, ContainerSpec: { Image: 'web:2' } } }));
    await waitFor('update under way', () => running(store, svc.ID).some((t) => t.Spec.ContainerSpec?.Image === 'web:2'), 20_000);

    await stack.stop();
    stack = null;
    await cluster.stopMember(cluster.ids.find((id) => cluster.member(id).rs === first)!);
    const next = await cluster.waitLeader(20_000);
    store = next.store;
    expect(store.get('service', svc.ID)!.UpdateStatus?.State).toBe('updating');
    stack = lead(store);
    await waitFor('update completed', () => store.get('service', svc.ID)!.UpdateStatus?.State === 'completed', 30_000);
    await waitFor('4 running web:2', () => running(store, svc.ID).filter((t) => t.Spec.ContainerSpec?.Image === 'web:2').length === 4, 20_000);
    expect(live(store, svc.ID)).toHaveLength(4);
    expect(new Set(live(store, svc.ID).map((t) => t.Slot))).toEqual(new Set([1, 2, 3, 4]));
  });
});
