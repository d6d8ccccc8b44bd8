// The allocator in a control plane over a real single-manager store (Raft, LevelDB in a temp dir,
// TCP on loopback): the control API creates networks and services as `docker network create` and
// `docker service create` do; the orchestrators, the allocator, the scheduler loop and simulated
// workers take the tasks to RUNNING. What a user would read back with `network inspect`,
// `service inspect` and `inspect <task>`: subnets and VNIs, task addresses per network, VIPs,
// published ports, node ingress addresses — never two holders of one address — and addresses
// coming back when tasks, services and networks go. A second allocator started over the same
// store (a new leader) rebuilds the same state from the store alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ControlApi } from '../controlapi/control-api.js';
import { Orchestrators } from '../orchestrator/index.js';
import { addNode, startHarness, waitFor, type Harness } from '../orchestrator/testing/harness.js';
import { SimWorkers } from '../orchestrator/testing/sim-workers.js';
import { isAlive } from '../orchestrator/task-state.js';
import { SchedulerLoop } from '../schedule/scheduler-loop.js';
import { byServiceId } from '../store/query.js';
import type { Network, Service, Task } from '../store/types.js';
import { Allocator } from './allocator.js';
import { initialAllocation } from './init.js';
import { addrOfInterface, contains, parseCidr } from './ipv4.js';
import { vniOf } from './vni.js';

let h: Harness;
let api: ControlApi;
let orch: Orchestrators;
let sched: SchedulerLoop;
let alloc: Allocator;
let sim: SimWorkers;
let ingress: Network;

function startAllocator(): Allocator {
  const a = new Allocator({ store: h.store, logger: h.logger, clock: h.clock });
  a.start();
  return a;
}

beforeAll(async () => {
  h = await startHarness();
  // What swarm init writes: the cluster's pool and the ingress network.
  const init = initialAllocation(undefined, undefined);
  await h.store.update((tx) => {
    tx.create('cluster', { Spec: { Name: 'default' }, ...init.cluster });
    tx.create('network', init.ingress);
  });
  ingress = h.store.find('network')[0]!;
  api = new ControlApi({ store: h.store });
  orch = new Orchestrators({ store: h.store, logger: h.logger, clock: h.clock });
  sched = new SchedulerLoop({ store: h.store, logger: h.logger, clock: h.clock, allocatorAdmits: true });
  sim = new SimWorkers({ store: h.store });
  alloc = startAllocator();
  orch.start();
  sched.start();
  sim.start();
  for (const hostname of ['n1', 'n2']) await addNode(h.store, { hostname });
}, 30_000);

afterAll(async () => {
  await sim?.stop();
  await sched?.stop();
  await alloc?.stop();
  await orch?.stop();
  await h?.close();
});

function serviceSpec(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { Name: name, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' } }, Mode: { Replicated: { Replicas: 1 } }, ...extra };
}

function running(serviceId: string): Task[] {
  return h.store.find('task', byServiceId(serviceId)).filter((t) => t.DesiredState === 'running' && t.Status.State === 'running');
}

async function waitRunning(svc: Service, n: number): Promise<Task[]> {
  return waitFor(`${n} running tasks of ${svc.Spec.Name}`, () => {
    const r = running(svc.ID);
    return r.length === n && h.store.find('task', byServiceId(svc.ID)).every((t) => t.DesiredState !== 'running' || t.Status.State === 'running') ? r : undefined;
  });
}

async function waitEndpoint(id: string, ok: (s: Service) => boolean): Promise<Service> {
  return waitFor(`service ${id}'s endpoint`, () => {
    const s = h.store.get('service', id);
    return s !== undefined && ok(s) ? s : undefined;
  });
}

/** Every address held by a live task, a VIP or a node, per network: each must appear once. */
function holders(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (net: string, addr: string, who: string): void => {
    const k = `${net} ${addr.split('/')[0]}`;
    out.set(k, [...(out.get(k) ?? []), who]);
  };
  for (const t of h.store.find('task')) if (isAlive(t)) for (const a of t.NetworksAttachments ?? []) for (const x of a.Addresses) add(a.Network.ID, x, `task ${t.ID}`);
  for (const s of h.store.find('service')) for (const v of s.Endpoint?.VirtualIPs ?? []) add(v.NetworkID, v.Addr, `vip ${s.Spec.Name}`);
  for (const n of h.store.find('node')) for (const a of n.Attachments ?? []) for (const x of a.Addresses) add(a.Network.ID, x, `node ${n.ID}`);
  return out;
}

function expectNoSharedAddress(): void {
  const shared = [...holders()].filter(([, who]) => who.length > 1);
  expect(shared).toEqual([]);
}

function inNetwork(net: Network, addr: string): boolean {
  const subnet = parseCidr(net.IPAMOptions!.Configs![0]!.Subnet!, 'subnet');
  return addr.endsWith(`/${subnet.prefixLength}`) && contains(subnet, addrOfInterface(addr)!) && addr.split('/')[0] !== net.IPAMOptions!.Configs![0]!.Gateway;
}

describe('allocator', () => {
  let appnet: Network;

  it('network create: the next /24 of the default pool, its first address as gateway, the next VNI', async () => {
    expect(ingress.IPAMOptions?.Configs).toEqual([{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }]);
    expect(vniOf(ingress.DriverState?.Options)).toBe(4096);
    appnet = await api.createNetwork({ Name: 'appnet', DriverConfiguration: { Name: 'overlay' }, IPAMOptions: { Driver: { Name: 'default' } } });
    expect(appnet.IPAMOptions?.Configs).toEqual([{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }]);
    expect(appnet.DriverState).toEqual({ Name: 'overlay', Options: { 'com.docker.network.driver.overlay.vxlanid_list': '4097' } });
    const mine = await api.createNetwork({ Name: 'mine', IPAMOptions: { Configs: [{ Subnet: '10.0.2.0/24', Gateway: '10.0.2.254' }] }, Attachable: true, Internal: true });
    expect(mine.IPAMOptions?.Configs).toEqual([{ Subnet: '10.0.2.0/24', Gateway: '10.0.2.254' }]);
    expect(mine.Spec).toMatchObject({ Attachable: true, Internal: true });
    expect(vniOf(mine.DriverState?.Options)).toBe(4098);
  });

  it('network create refuses a subnet that overlaps another network, and creates nothing', async () => {
    const before = h.store.find('network').length;
    await expect(api.createNetwork({ Name: 'clash', IPAMOptions: { Configs: [{ Subnet: '10.0.0.0/16' }] } })).rejects.toThrow(
      /^invalid pool request: Pool overlaps with other one on this address space \(network clash's subnet 10\.0\.0\.0\/16 overlaps 10\.0\.0\.0\/24 of network ingress\)/,
    );
    await expect(api.createNetwork({ Name: 'clash2', IPAMOptions: { Configs: [{ Subnet: '10.0.1.128/25' }] } })).rejects.toThrow(/overlaps 10\.0\.1\.0\/24 of network appnet/);
    await expect(api.createNetwork({ Name: 'gw', IPAMOptions: { Configs: [{ Subnet: '10.9.0.0/24', Gateway: '10.9.1.1' }] } })).rejects.toThrow(/Gateway "10\.9\.1\.1" is not an address of 10\.9\.0\.0\/24/);
    await expect(api.createNetwork({ Name: 'enc', DriverConfiguration: { Name: 'overlay', Options: { encrypted: '' } } })).rejects.toThrow(/--opt encrypted is not supported: encrypted overlays need IPsec ESP .*or WireGuard/);
    expect(h.store.find('network').length).toBe(before);
    // The pool skips what the user took: 10.0.2.0/24 is `mine`, so the next is 10.0.3.0/24.
    const next = await api.createNetwork({ Name: 'next' });
    expect(next.IPAMOptions?.Configs?.[0]?.Subnet).toBe('10.0.3.0/24');
    await api.removeNetwork('next');
  });

  it("every node gets an address on ingress (the routing mesh's sandbox)", async () => {
    const nodes = await waitFor('node ingress addresses', () => {
      const ns = h.store.find('node');
      return ns.length === 2 && ns.every((n) => n.Attachments?.length === 1) ? ns : undefined;
    });
    for (const n of nodes) {
      expect(n.Attachments![0]!.Network.ID).toBe(ingress.ID);
      expect(inNetwork(ingress, n.Attachments![0]!.Addresses[0]!)).toBe(true);
    }
    expectNoSharedAddress();
  });

  it("a service's tasks get one address each on its network and the service a VIP there", async () => {
    const svc = await api.createService(serviceSpec('web', { Mode: { Replicated: { Replicas: 3 } }, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: appnet.ID, Aliases: ['www'] }] } }));
    const tasks = await waitRunning(svc, 3);
    const s = await waitEndpoint(svc.ID, (x) => (x.Endpoint?.VirtualIPs?.length ?? 0) === 1);
    expect(s.Endpoint?.Spec).toEqual({});
    const vip = s.Endpoint!.VirtualIPs![0]!;
    expect(vip.NetworkID).toBe(appnet.ID);
    expect(inNetwork(appnet, vip.Addr)).toBe(true);
    for (const t of tasks) {
      expect(t.NetworksAttachments).toHaveLength(1);
      const a = t.NetworksAttachments![0]!;
      expect(a.Network.ID).toBe(appnet.ID);
      expect(a.Network.DriverState?.Options?.['com.docker.network.driver.overlay.vxlanid_list']).toBe('4097');
      expect(a.Aliases).toEqual(['www']);
      expect(a.Addresses).toHaveLength(1);
      expect(inNetwork(appnet, a.Addresses[0]!)).toBe(true);
    }
    expectNoSharedAddress();
  });

  it('a task with nothing to allocate (no network, no published port) is created PENDING: one write fewer; with a network it is created NEW and admitted with its address', async () => {
    const watch = h.store.watch({ kinds: ['task'] });
    try {
      const plain = await api.createService(serviceSpec('plain', { Mode: { Replicated: { Replicas: 2 } } }));
      const netted = await api.createService(serviceSpec('netted', { TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: appnet.ID }] } }));
      await waitRunning(plain, 2);
      await waitRunning(netted, 1);
      // Each task's observed states, one per write, in commit order.
      const history = new Map<string, { service: string; states: string[] }>();
      for (let ev = watch.poll(), n = 0; ev !== null && n < 10_000; ev = watch.poll(), n++) {
        if (ev.kind !== 'task' || ev.action === 'delete') continue;
        const h0 = history.get(ev.object.ID) ?? { service: ev.object.ServiceID, states: [] };
        h0.states.push(ev.object.Status.State);
        history.set(ev.object.ID, h0);
      }
      const of = (id: string): string[][] => [...history.values()].filter((x) => x.service === id).map((x) => x.states);
      expect(of(plain.ID)).toHaveLength(2);
      for (const states of of(plain.ID)) {
        expect(states[0]).toBe('pending');
        expect(states[1]).toBe('assigned');
        expect(states).not.toContain('new');
      }
      expect(of(netted.ID)).toHaveLength(1);
      expect(of(netted.ID)[0]!.slice(0, 3)).toEqual(['new', 'pending', 'assigned']);
      await api.removeService(plain.ID);
      await api.removeService(netted.ID);
      await waitFor('the tasks of plain and netted gone from the workers', () => h.store.find('task').every((t) => (t.ServiceID !== plain.ID && t.ServiceID !== netted.ID) || !isAlive(t)) || undefined);
    } finally {
      watch.close();
    }
  });

  it('a burst larger than one transaction (1,100 tasks on one network): every task gets its own address, in chunks committed together', async () => {
    const big = await api.createNetwork({ Name: 'big', IPAMOptions: { Configs: [{ Subnet: '10.20.0.0/21' }] } });
    const svc = await api.createService(serviceSpec('burst', { Mode: { Replicated: { Replicas: 1_100 } }, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: big.ID }] } }));
    const tasks = await waitFor('1,100 running tasks of burst', () => (running(svc.ID).length === 1_100 ? running(svc.ID) : undefined), 40_000);
    const addrs = new Set(tasks.map((t) => t.NetworksAttachments?.[0]?.Addresses[0]));
    expect(addrs.size).toBe(1_100);
    for (const a of addrs) expect(inNetwork(big, a!)).toBe(true);
    expectNoSharedAddress();
    await api.removeService(svc.ID);
    await waitFor('the burst gone', () => h.store.find('task', byServiceId(svc.ID)).every((t) => !isAlive(t)) || undefined, 15_000);
    await api.removeNetwork(big.ID);
  }, 60_000);

  it('published ports: 8080:80 through ingress (VIP and task addresses there), a dynamic port from 30000, host mode passes through', async () => {
    const svc = await api.createService(
      serviceSpec('pub', {
        Mode: { Replicated: { Replicas: 2 } },
        TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: 'appnet' }] },
        EndpointSpec: {
          Mode: 'vip',
          Ports: [
            { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
            { Protocol: 'tcp', TargetPort: 81 },
            { Protocol: 'udp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'host' },
          ],
        },
      }),
    );
    const s = await waitEndpoint(svc.ID, (x) => (x.Endpoint?.VirtualIPs?.length ?? 0) === 2);
    expect(s.Endpoint?.Ports).toEqual([
      { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
      { Protocol: 'tcp', TargetPort: 81, PublishedPort: 30000, PublishMode: 'ingress' },
      { Protocol: 'udp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'host' },
    ]);
    expect(s.Endpoint?.VirtualIPs?.map((v) => v.NetworkID)).toEqual([ingress.ID, appnet.ID]);
    expect(inNetwork(ingress, s.Endpoint!.VirtualIPs![0]!.Addr)).toBe(true);
    const tasks = await waitRunning(svc, 2);
    for (const t of tasks) {
      expect(t.NetworksAttachments?.map((a) => a.Network.ID)).toEqual([ingress.ID, appnet.ID]);
      expect(inNetwork(ingress, t.NetworksAttachments![0]!.Addresses[0]!)).toBe(true);
    }
    expectNoSharedAddress();

    // The routing mesh needs ingress while the service publishes there.
    await expect(api.removeNetwork('ingress')).rejects.toThrow('ingress network cannot be removed because service pub depends on it (it publishes ports in ingress mode)');

    // The port is taken: another service asking for it is refused, naming the holder.
    await expect(api.createService(serviceSpec('thief', { EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080 }] } }))).rejects.toThrow(
      `port '8080' is already in use by service 'pub' (${svc.ID}) as an ingress port`,
    );
    // …and so is the dynamic one it was given.
    await expect(api.createService(serviceSpec('thief2', { EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 30000 }] } }))).rejects.toThrow(
      `port '30000' is already in use by service 'pub' (${svc.ID}) as an ingress port`,
    );

    // An update keeps the dynamic port and the VIPs.
    const cur = h.store.get('service', svc.ID)!;
    await api.updateService(svc.ID, cur.Version.Index, { ...cur.Spec, Labels: { v: '2' } });
    const after = await waitEndpoint(svc.ID, (x) => x.Spec.Labels?.['v'] === '2');
    expect(after.Endpoint?.Ports?.[1]?.PublishedPort).toBe(30000);
    expect(after.Endpoint?.VirtualIPs).toEqual(s.Endpoint?.VirtualIPs);
  });

  it('dnsrr: no VIP, the tasks still get their addresses', async () => {
    const svc = await api.createService(serviceSpec('rr', { TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: appnet.ID }] }, EndpointSpec: { Mode: 'dnsrr' } }));
    const [t] = await waitRunning(svc, 1);
    const s = h.store.get('service', svc.ID)!;
    expect(s.Endpoint).toEqual({ Spec: { Mode: 'dnsrr' } });
    expect(inNetwork(appnet, t!.NetworksAttachments![0]!.Addresses[0]!)).toBe(true);
  });

  it('addresses come back: scaling down frees task addresses, removing the service frees its VIP and ports, then the network can go', async () => {
    const tiny = await api.createNetwork({ Name: 'tiny', IPAMOptions: { Configs: [{ Subnet: '10.50.0.0/29' }] } });
    // A /29 has 5 addresses for tasks and VIPs (.2–.6): a VIP and 4 tasks fill it.
    const svc = await api.createService(serviceSpec('fill', { Mode: { Replicated: { Replicas: 4 } }, TaskTemplate: { ContainerSpec: { Image: 'busybox:1' }, Networks: [{ Target: 'tiny' }] } }));
    await waitRunning(svc, 4);
    expect(h.store.get('service', svc.ID)!.Endpoint?.VirtualIPs?.[0]?.Addr).toMatch(/^10\.50\.0\.[2-6]\/29$/);

    // A fifth replica cannot get an address: it waits, saying why.
    let cur = h.store.get('service', svc.ID)!;
    await api.updateService(svc.ID, cur.Version.Index, { ...cur.Spec, Mode: { Replicated: { Replicas: 5 } } });
    const waiting = await waitFor('a task waiting for an address', () => h.store.find('task', byServiceId(svc.ID)).find((t) => t.Status.State === 'new' && t.Status.Err !== undefined));
    expect(waiting.Status.Err).toBe('no free address left on network tiny (10.50.0.0/29, gateway 10.50.0.1): remove tasks or services from it, or use a network with a larger subnet');

    // Scaling back to 3 stops two tasks; their addresses go to the waiting one (scale 5 → 3 leaves it wanted or not, either way nothing is shared).
    cur = h.store.get('service', svc.ID)!;
    await api.updateService(svc.ID, cur.Version.Index, { ...cur.Spec, Mode: { Replicated: { Replicas: 3 } } });
    await waitRunning(svc, 3);
    await waitFor('no task left NEW', () => h.store.find('task', byServiceId(svc.ID)).every((t) => t.Status.State !== 'new') || undefined);
    expectNoSharedAddress();

    // Back to 4: the freed addresses are handed out again.
    cur = h.store.get('service', svc.ID)!;
    await api.updateService(svc.ID, cur.Version.Index, { ...cur.Spec, Mode: { Replicated: { Replicas: 4 } } });
    await waitRunning(svc, 4);
    expectNoSharedAddress();

    await expect(api.removeNetwork('tiny')).rejects.toThrow('network tiny is in use by service fill');
    await api.removeService(svc.ID);
    await waitFor('the service\'s tasks stopped', () => h.store.find('task', byServiceId(svc.ID)).every((t) => !isAlive(t)) || undefined);
    await api.removeNetwork('tiny');
    expect(h.store.find('network').some((n) => n.ID === tiny.ID)).toBe(false);
    expect([...holders().keys()].some((k) => k.startsWith(tiny.ID))).toBe(false);
  });

  it('a new leader rebuilds the allocations from the store: a fresh allocator hands out no address twice', async () => {
    await alloc.stop();
    alloc = startAllocator();
    const svc = h.store.lookup('service', 'web');
    const cur = h.store.get('service', svc.ID)!;
    await api.updateService(svc.ID, cur.Version.Index, { ...cur.Spec, Mode: { Replicated: { Replicas: 6 } } });
    await waitRunning(svc, 6);
    // The VIP did not move, and 6 tasks + VIP + the other services' holders are all distinct.
    expect(h.store.get('service', svc.ID)!.Endpoint?.VirtualIPs).toEqual(cur.Endpoint?.VirtualIPs);
    expectNoSharedAddress();
    const ports = await api.createService(serviceSpec('pub2', { EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80 }] } }));
    const s = await waitEndpoint(ports.ID, (x) => (x.Endpoint?.Ports?.length ?? 0) === 1);
    expect(s.Endpoint?.Ports?.[0]?.PublishedPort).toBe(30001); // 30000 is still pub's
  });

  it("without an ingress network, a port in ingress mode is refused (swarmkit's FailedPrecondition) and host mode still works", async () => {
    const meshUsers = ['pub', 'pub2'].map((name) => h.store.lookup('service', name).ID);
    for (const id of meshUsers) await api.removeService(id);
    await waitFor('the ingress users\' tasks stopped', () => h.store.find('task').every((t) => !meshUsers.includes(t.ServiceID) || !isAlive(t)) || undefined);
    await api.removeNetwork('ingress');
    expect(h.store.find('network').some((n) => n.Spec.Ingress === true)).toBe(false);
    const refusal = { code: 'ERR_CONTROL_PRECONDITION', message: 'service needs ingress network, but no ingress network is present' };
    // Explicit port, dynamic port (PublishMode defaults to ingress): refused, nothing created.
    await expect(api.createService(serviceSpec('mesh', { EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080 }] } }))).rejects.toMatchObject(refusal);
    await expect(api.createService(serviceSpec('mesh', { EndpointSpec: { Ports: [{ TargetPort: 80 }] } }))).rejects.toMatchObject(refusal);
    expect(h.store.find('service').some((x) => x.Spec.Name === 'mesh')).toBe(false);
    // Host mode needs no ingress; an update to ingress mode is refused and the service is unchanged.
    const host = await api.createService(serviceSpec('hostport', { EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8081, PublishMode: 'host' }] } }));
    const s = await waitEndpoint(host.ID, (x) => (x.Endpoint?.Ports?.length ?? 0) === 1);
    expect(s.Endpoint?.Ports).toEqual([{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8081, PublishMode: 'host' }]);
    // Its tasks carry the Endpoint (as swarmkit's): the worker publishes the port from it.
    const [t] = await waitRunning(s, 1);
    expect(t!.Endpoint?.Ports).toEqual(s.Endpoint?.Ports);
    await expect(api.updateService(host.ID, s.Version.Index, { ...s.Spec, EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8081 }] } })).rejects.toMatchObject(refusal);
    expect(h.store.get('service', host.ID)!.Spec.EndpointSpec?.Ports?.[0]?.PublishMode).toBe('host');
  });
});
