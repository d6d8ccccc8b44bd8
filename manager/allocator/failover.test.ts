// Allocation across a leader change, on three real managers in one process (Raft over TCP on
// loopback, LevelDB in temp dirs): the first leader's allocator gives a service its VIP and a
// dynamic port and its tasks their addresses; that manager stops; the new leader's allocator,
// which knows only the replicated store, keeps every one of them and hands out no address, port,
// subnet or VNI twice.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ControlApi } from '../controlapi/control-api.js';
import { systemClock } from '../orchestrator/clock.js';
import { Orchestrators } from '../orchestrator/index.js';
import { addNode } from '../orchestrator/testing/harness.js';
import { SimWorkers } from '../orchestrator/testing/sim-workers.js';
import { isAlive } from '../orchestrator/task-state.js';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import type { MemoryStore } from '../store/memory-store.js';
import { byServiceId } from '../store/query.js';
import { StoreCluster, waitFor } from '../store/testing/cluster.js';
import { Allocator } from './allocator.js';
import { initialAllocation } from './init.js';
import { vniOf } from './vni.js';

const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });
const WAIT_MS = 20_000;
let cluster: StoreCluster;
let stack: { stop(): Promise<void> } | null = null;

/** What leader-services starts when a manager becomes leader. */
function lead(store: MemoryStore): { stop(): Promise<void> } {
  const orch = new Orchestrators({ store, logger, clock: systemClock });
  const alloc = new Allocator({ store, logger, clock: systemClock });
  const sched = new SchedulerLoop({ store, logger, clock: systemClock, allocatorAdmits: true });
  const sim = new SimWorkers({ store });
  orch.start();
  alloc.start();
  sched.start();
  sim.start();
  return {
    stop: async () => {
      await sim.stop();
      await sched.stop();
      await alloc.stop();
      await orch.stop();
    },
  };
}

function running(store: MemoryStore, serviceId: string, n: number): boolean {
  const ts = store.find('task', byServiceId(serviceId)).filter((t) => t.DesiredState === 'running');
  return ts.length === n && ts.every((t) => t.Status.State === 'running');
}

/** network ID + address → holders, over live tasks, VIPs and node attachments. */
function sharedAddresses(store: MemoryStore): string[] {
  const seen = new Map<string, number>();
  const add = (net: string, addr: string): void => {
    const k = `${net} ${addr}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  };
  for (const t of store.find('task')) if (isAlive(t)) for (const a of t.NetworksAttachments ?? []) for (const x of a.Addresses) add(a.Network.ID, x);
  for (const s of store.find('service')) for (const v of s.Endpoint?.VirtualIPs ?? []) add(v.NetworkID, v.Addr);
  for (const n of store.find('node')) for (const a of n.Attachments ?? []) for (const x of a.Addresses) add(a.Network.ID, x);
  return [...seen].filter(([, n]) => n > 1).map(([k]) => k);
}

beforeAll(async () => {
  cluster = await StoreCluster.start({ size: 3 });
}, 30_000);

afterAll(async () => {
  await stack?.stop();
  await cluster?.close();
});

describe('allocator across a leader change', () => {
  it("the new leader keeps the old leader's allocations and never hands one out twice", async () => {
    const first = await cluster.waitLeader();
    let store = first.store;
    const init = initialAllocation(undefined, undefined);
    await store.update((tx) => {
      tx.create('cluster', { Spec: { Name: 'default' }, ...init.cluster });
      tx.create('network', init.ingress);
    });
    for (const hostname of ['n1', 'n2']) await addNode(store, { hostname });
    stack = lead(store);
    let api = new ControlApi({ store });
    const net = await api.createNetwork({ Name: 'appnet' });
    const svc = await api.createService({
      Name: 'web',
      TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: net.ID }] },
      Mode: { Replicated: { Replicas: 4 } },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80 }] },
    });
    await waitFor('4 running', () => running(store, svc.ID, 4), WAIT_MS);
    const before = await waitFor('the endpoint', () => {
      const s = store.get('service', svc.ID)!;
      return s.Endpoint?.VirtualIPs?.length === 2 ? s.Endpoint : undefined;
    });
    expect(before.Ports?.[0]?.PublishedPort).toBe(30000);

    await stack.stop();
    stack = null;
    await cluster.stopMember(cluster.ids.find((id) => cluster.member(id).rs === first)!);
    const next = await cluster.waitLeader(WAIT_MS);
    store = next.store;
    stack = lead(store);
    api = new ControlApi({ store });

    // More of everything under the new leader.
    const cur = store.get('service', svc.ID)!;
    await api.updateService(svc.ID, cur.Version.Index, { ...cur.Spec, Mode: { Replicated: { Replicas: 8 } } });
    const net2 = await api.createNetwork({ Name: 'second' });
    const svc2 = await api.createService({
      Name: 'api',
      TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: net.ID }, { Target: net2.ID }] },
      Mode: { Replicated: { Replicas: 3 } },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 8080 }] },
    });
    await waitFor('8 + 3 running', () => running(store, svc.ID, 8) && running(store, svc2.ID, 3), WAIT_MS);

    expect(store.get('service', svc.ID)!.Endpoint?.VirtualIPs).toEqual(before.VirtualIPs);
    expect(store.get('service', svc.ID)!.Endpoint?.Ports).toEqual(before.Ports);
    const ep2 = await waitFor('api endpoint', () => store.get('service', svc2.ID)!.Endpoint?.Ports?.[0]?.PublishedPort);
    expect(ep2).toBe(30001);
    expect(net2.IPAMOptions?.Configs?.[0]?.Subnet).toBe('10.0.2.0/24');
    expect([net.DriverState, net2.DriverState].map((d) => vniOf(d?.Options))).toEqual([4097, 4098]);
    for (const t of store.find('task', byServiceId(svc2.ID)).filter(isAlive)) expect(t.NetworksAttachments?.map((a) => a.Network.Spec.Name)).toEqual(['ingress', 'appnet', 'second']);
    expect(sharedAddresses(store)).toEqual([]);
  });
});
