// The worker's network manager: turns the node's assignments into the overlay data plane
// (overlay/). It owns, on this node:
//   - a network namespace per task attached to overlay networks (shoal-<hostTag>-t<task>), with a
//     veth per network (eth0, eth1, … in the order of Task.NetworksAttachments), made before the
//     executor prepares the container (the executor is handed the namespace and the resolv.conf);
//   - the network's sandbox, created with the first local task that needs it and removed with the
//     last one (or kept while this node's ingress sandbox is on it);
//   - the peers (FDB + neighbour entries), VIP rules and DNS records of each network, from the
//     dispatcher's network views (manager/dispatcher/network-peers.ts), reprogrammed as they change;
//   - the routing mesh: this node's ingress sandbox and the published ports (overlay/ingress.ts);
//   - every task's route to the outside world: an interface on the node's gateway bridge
//     (overlay/gateway-bridge.ts, Docker's docker_gwbridge) carrying its default route, the host
//     masquerading; a task on no overlay network gets a namespace with only that (Docker: the
//     default bridge) and the host's resolvers. Host-mode published ports are DNATed to it.
// Every change goes through one queue (bounded work per call, no overlap). The data plane starts
// once the node's underlay address is known (Node.Status.Addr from the session).
import { existsSync } from 'node:fs';

import { pino, type Logger } from 'pino';

import type { NetworkPeers } from '../../manager/dispatcher/network-peers.js';
import type { Network, PortConfig, Task } from '../../manager/store/types.js';
import { nameserverUpstreams, OverlayDataPlane, type OverlayNetwork, type OverlayNetworkSpec, type Upstream } from '../../overlay/index.js';
import { GONE, run, runTolerating } from '../../overlay/exec.js';
import { GatewayBridge, type HostPort } from '../../overlay/gateway-bridge.js';
import { IngressSandbox, type PublishedPort } from '../../overlay/ingress.js';
import { netnsPath, taskNetnsName, taskNetnsPrefix } from '../../overlay/names.js';
import { embeddedResolverConf, readHostResolvConfText, taskResolvConf } from './resolv-conf.js';

export const VNI_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';

export class WorkerNetworkError extends Error {
  constructor(
    readonly code: 'ERR_NETWORK_NOT_READY' | 'ERR_NETWORK_INVALID' | 'ERR_NETWORK_CLOSED',
    message: string,
  ) {
    super(message);
    this.name = 'WorkerNetworkError';
  }
}

/** What the executor gets for a task. */
export interface TaskNetworkConfig {
  readonly networkNamespacePath: string;
  /** The embedded resolver on the first non-ingress overlay network, else the host's resolvers (resolv-conf.ts). */
  readonly resolvConf?: string;
  /** Host-mode ports published on this node for the task: its Status.PortStatus.Ports. */
  readonly ports?: readonly PortConfig[];
}

/** The agent's view of the network manager (worker/agent only needs this). */
export interface TaskNetworks {
  /** Attaches the task to its networks and the gateway bridge; undefined: the executor makes a loopback-only netns. */
  prepareTask(task: Task): Promise<TaskNetworkConfig | undefined>;
  /** Detaches the task and removes its namespace; networks left without local tasks go. Idempotent. */
  releaseTask(taskId: string): Promise<void>;
  /** The node's underlay address, from the session (Node.Status.Addr). */
  setLocalAddress(addr: string): void;
  /** A network view from the assignments (UPDATE) … */
  setView(view: NetworkPeers): void;
  /** … or its REMOVE. */
  removeView(networkId: string): void;
  /** After a COMPLETE set: views not listed are dropped; task namespaces of tasks not listed are removed. */
  completeSet(networkIds: readonly string[], taskIds: readonly string[]): void;
}

export interface WorkerNetworksOptions {
  /** The executor's netns tag (sanitized hostname): every namespace of ours is shoal-<hostTag>-…. */
  readonly hostTag: string;
  /** This node's ID: finds its ingress attachment in the ingress network's view. */
  readonly nodeId: string;
  readonly upstreamResolvers?: readonly Upstream[];
  /** How long a task waits for the underlay address before its prepare fails. */
  readonly readyTimeoutMs?: number;
  /** Subnet of the gateway bridge, every task's route out (default 172.18.0.0/16, Docker's docker_gwbridge). */
  readonly gatewaySubnet?: string;
  /** The host's resolv.conf, read at each prepare of a task without an embedded resolver (default /etc/resolv.conf). */
  readonly hostResolvConf?: string;
  /** The host's network namespace (tests, lab-style hosts in one process); undefined = ours. */
  readonly hostNetns?: string;
  readonly logger?: Logger;
}

interface LocalTask {
  readonly taskId: string;
  readonly netnsName: string;
  readonly networkIds: readonly string[];
  /** It has an endpoint on the gateway bridge. */
  readonly gateway: boolean;
  readonly config: TaskNetworkConfig;
}

/**
 * Whether the task gets an endpoint on the gateway bridge, as libnetwork decides it: unless every
 * network it is on is `--internal` (and it publishes no host-mode port). A task on no network gets one.
 */
export function needsGateway(task: Task): boolean {
  const attachments = (task.NetworksAttachments ?? []).filter((a) => overlaySpecOf(a.Network) !== undefined);
  return attachments.length === 0 || attachments.some((a) => a.Network.Spec.Internal !== true) || hostPortsOf(task).length > 0;
}

/** The task's host-mode published ports (from Task.Endpoint, which the allocator copies from its service). */
export function hostPortsOf(task: Task): PortConfig[] {
  return (task.Endpoint?.Ports ?? []).filter((p) => p.PublishMode === 'host' && (p.PublishedPort ?? 0) > 0);
}

function stripPrefix(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** The data plane's spec of a Network object, or undefined for a network that is not an overlay. */
export function overlaySpecOf(network: Network): OverlayNetworkSpec | undefined {
  const driver = network.DriverState?.Name ?? network.Spec.DriverConfiguration?.Name ?? 'overlay';
  if (driver !== 'overlay') return undefined;
  const vniText = network.DriverState?.Options?.[VNI_OPTION] ?? '';
  const vni = Number(vniText.split(',')[0]);
  const ipam = network.IPAMOptions?.Configs?.[0] ?? network.Spec.IPAMOptions?.Configs?.[0];
  if (!Number.isInteger(vni) || vni <= 0 || ipam?.Subnet === undefined || ipam.Gateway === undefined) {
    throw new WorkerNetworkError('ERR_NETWORK_INVALID', `network ${network.Spec.Name} (${network.ID}) is not allocated yet: it has no VNI, subnet or gateway`);
  }
  return {
    id: network.ID,
    name: network.Spec.Name,
    vni,
    subnet: ipam.Subnet,
    gateway: ipam.Gateway,
    ...(network.Spec.DriverConfiguration?.Options !== undefined ? { options: network.Spec.DriverConfiguration.Options } : {}),
    ...(network.Spec.Ingress === true ? { dns: false } : {}),
  };
}

async function findInterface(addr: string, netns: string | undefined): Promise<string> {
  const out = await run(['ip', '-o', '-4', 'addr', 'show'], { netns });
  for (const line of out.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+)\//.exec(line);
    if (m?.[2] === addr) return m[1]!;
  }
  throw new WorkerNetworkError('ERR_NETWORK_NOT_READY', `no interface of this host has the node address ${addr}`);
}

export class WorkerNetworks implements TaskNetworks {
  private readonly log: Logger;
  private plane: OverlayDataPlane | null = null;
  private ingress: IngressSandbox | null = null;
  private ingressNetworkId: string | null = null;
  private gwbridge: GatewayBridge | null = null;
  private gwbridgeMaking: Promise<GatewayBridge> | null = null;
  /**
   * Tasks on no overlay network: their prepare and release run beside the queue (they touch only
   * their own namespace and the gateway bridge), one at a time per task; the chain's tail per task.
   */
  private readonly ownLane = new Map<string, Promise<unknown>>();
  private readonly laneTasks = new Set<string>();
  /** The peer list last applied to each network's sandbox: a view that changes only services skips setPeers (two kernel reads). */
  private readonly appliedPeers = new WeakMap<OverlayNetwork, string>();
  private localAddr: string | null = null;
  private ready: Promise<OverlayDataPlane>;
  private resolveReady!: (p: OverlayDataPlane) => void;
  private rejectReady!: (e: Error) => void;
  private readonly views = new Map<string, NetworkPeers>();
  private readonly tasks = new Map<string, LocalTask>();
  /** Prepares waiting for the data plane; a release meanwhile cancels them (they would attach after it). */
  private readonly waiting = new Set<string>();
  private readonly cancelled = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: WorkerNetworksOptions) {
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'worker-network' });
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined);
  }

  /** The data plane, once started (tests, status). */
  get dataPlane(): OverlayDataPlane | null {
    return this.plane;
  }

  get ingressSandbox(): IngressSandbox | null {
    return this.ingress;
  }

  setLocalAddress(addr: string): void {
    if (addr === '' || this.localAddr !== null || this.closed) return;
    this.localAddr = addr;
    void this.serialize(async () => {
      try {
        const underlayInterface = await findInterface(addr, this.opts.hostNetns);
        const plane = new OverlayDataPlane({
          hostTag: this.opts.hostTag,
          underlayAddress: addr,
          underlayInterface,
          logger: this.log,
          ...(this.opts.hostNetns !== undefined ? { hostNetns: this.opts.hostNetns } : {}),
          ...(this.opts.upstreamResolvers !== undefined ? { upstreamResolvers: this.opts.upstreamResolvers } : {}),
        });
        // What an earlier run left: sandboxes (rebuilt on demand from the tasks) and the ingress sandbox.
        await plane.reconcile({ networkIds: [], containerNetns: [...this.tasks.values()].map((t) => netnsPath(t.netnsName)) });
        await IngressSandbox.removeLeftovers(this.opts.hostTag, this.opts.hostNetns);
        // (A gateway bridge an earlier run left is removed when this run makes its own, with its first task.)
        this.plane = plane;
        this.log.info({ underlayAddress: addr, underlayInterface }, 'overlay data plane ready');
        this.resolveReady(plane);
        await this.syncIngress();
      } catch (err) {
        this.log.error({ err, addr }, 'the overlay data plane could not start');
        this.rejectReady(err as Error);
      }
    });
  }

  prepareTask(task: Task): Promise<TaskNetworkConfig | undefined> {
    const attachments = (task.NetworksAttachments ?? []).filter((a) => overlaySpecOf(a.Network) !== undefined);
    const hostPorts = hostPortsOf(task);
    // A task on no overlay network needs only the gateway bridge: not the node's address, nor the queue.
    if (attachments.length === 0) return this.prepareOnGatewayOnly(task, hostPorts);
    const gatewayWanted = needsGateway(task);
    this.waiting.add(task.ID);
    const ready = this.whenReady().catch((err: unknown) => {
      this.waiting.delete(task.ID);
      this.cancelled.delete(task.ID);
      throw err;
    });
    return ready.then(() =>
      this.serialize(async () => {
        this.waiting.delete(task.ID);
        if (this.cancelled.delete(task.ID)) throw new WorkerNetworkError('ERR_NETWORK_CLOSED', `task ${task.ID} was released before its networks were ready`);
        const known = this.tasks.get(task.ID);
        if (known !== undefined) return known.config;
        const plane = this.live();
        const netnsName = taskNetnsName(this.opts.hostTag, task.ID);
        const path = netnsPath(netnsName);
        // A namespace that exists already holds a container that survived a daemon restart. A new
        // one is made by the gateway bridge's batch (one process less), else here; `lo` is brought
        // up by the first endpoint's batch.
        const made = !existsSync(path);
        if (made && !gatewayWanted) await run(['ip', 'netns', 'add', netnsName]);
        const networkIds: string[] = [];
        let gateway = false;
        try {
          // The gateway bridge (Docker's docker_gwbridge) carries the default route: `eth<n>` after
          // the overlays'. Attached first, as it makes the namespace.
          if (gatewayWanted) {
            const bridge = await this.ensureGatewayBridge();
            const ports: HostPort[] = hostPorts.map((p) => ({ protocol: p.Protocol ?? 'tcp', publishedPort: p.PublishedPort!, targetPort: p.TargetPort }));
            await bridge.attach({ id: task.ID, containerNetns: path, ifName: `eth${attachments.length}`, ports, createNetns: made });
            gateway = true;
          }
          // The first network that is not the ingress carries the resolver (and the default route
          // when there is no gateway endpoint).
          const primary = attachments.find((a) => a.Network.Spec.Ingress !== true) ?? attachments[0];
          let nameserver = '';
          for (const [i, a] of attachments.entries()) {
            const net = await this.ensureNetwork(plane, a.Network);
            const ip = a.Addresses[0];
            if (ip === undefined) throw new WorkerNetworkError('ERR_NETWORK_INVALID', `task ${task.ID} has no address on network ${a.Network.Spec.Name}`);
            const ep = await net.attach({ id: task.ID, containerNetns: path, ifName: `eth${i}`, ip: stripPrefix(ip), defaultRoute: a === primary && !gatewayWanted });
            networkIds.push(net.id);
            if (a === primary && a.Network.Spec.Ingress !== true) nameserver = ep.nameserver;
          }
          const dns = task.Spec.ContainerSpec?.DNSConfig;
          const hostText = await readHostResolvConfText(this.opts.hostResolvConf);
          const resolvConf = nameserver !== '' ? embeddedResolverConf(hostText, nameserver, dns) : taskResolvConf(hostText, dns);
          // Names outside the cluster go to the task's own `--dns` servers, as Docker's embedded resolver forwards them.
          if (nameserver !== '') plane.setContainerResolvers(path, nameserverUpstreams(dns?.Nameservers ?? []));
          const config: TaskNetworkConfig = {
            networkNamespacePath: path,
            resolvConf,
            ...(hostPorts.length > 0 ? { ports: hostPorts } : {}),
          };
          this.tasks.set(task.ID, { taskId: task.ID, netnsName, networkIds, gateway, config });
          for (const id of networkIds) await this.program(id);
          this.log.info({ taskId: task.ID, networks: networkIds, gateway }, 'task attached to its networks');
          return config;
        } catch (err) {
          for (const id of networkIds) await plane.getNetwork(id)?.detach(task.ID).catch(() => undefined);
          if (gateway) await this.gwbridge?.detach(task.ID).catch(() => undefined);
          if (made) await runTolerating(['ip', 'netns', 'del', netnsName], GONE);
          await this.dropUnused();
          throw err;
        }
      }),
    );
  }

  releaseTask(taskId: string): Promise<void> {
    if (this.laneTasks.has(taskId)) return this.releaseOnGatewayOnly(taskId);
    if (this.waiting.has(taskId)) this.cancelled.add(taskId);
    return this.serialize(async () => {
      const t = this.tasks.get(taskId);
      this.tasks.delete(taskId);
      if (t !== undefined && this.plane !== null) {
        for (const id of t.networkIds) await this.plane.getNetwork(id)?.detach(taskId);
        this.plane.setContainerResolvers(netnsPath(t.netnsName), undefined);
      }
      if (t?.gateway === true) await this.gwbridge?.detach(taskId);
      await runTolerating(['ip', 'netns', 'del', taskNetnsName(this.opts.hostTag, taskId)], GONE);
      await this.dropUnused();
    });
  }

  setView(view: NetworkPeers): void {
    this.views.set(view.ID, view);
    if (view.Network.Spec.Ingress === true) this.ingressNetworkId = view.ID;
    void this.serialize(async () => {
      await this.program(view.ID);
      if (view.ID === this.ingressNetworkId) await this.syncIngress();
    }).catch((err: unknown) => this.log.warn({ err, networkId: view.ID }, 'programming a network view failed'));
  }

  removeView(networkId: string): void {
    this.views.delete(networkId);
    void this.serialize(async () => {
      if (networkId === this.ingressNetworkId) await this.syncIngress();
      await this.dropUnused();
    }).catch((err: unknown) => this.log.warn({ err, networkId }, 'removing a network view failed'));
  }

  completeSet(networkIds: readonly string[], taskIds: readonly string[]): void {
    const keep = new Set(networkIds);
    for (const id of [...this.views.keys()]) if (!keep.has(id)) this.removeView(id);
    const tasks = new Set(taskIds.map((id) => taskNetnsName(this.opts.hostTag, id)));
    void this.serialize(async () => {
      // Namespaces of tasks no longer assigned here (a daemon that died before releasing them).
      const prefix = taskNetnsPrefix(this.opts.hostTag);
      const listed = await run(['ip', 'netns', 'list']);
      for (const line of listed.split('\n')) {
        const name = line.split(' ')[0] ?? '';
        if (!name.startsWith(prefix) || tasks.has(name)) continue;
        if ([...this.tasks.values()].some((t) => t.netnsName === name)) continue;
        if ([...this.ownLane.keys()].some((id) => taskNetnsName(this.opts.hostTag, id) === name)) continue; // being prepared
        await runTolerating(['ip', 'netns', 'del', name], GONE);
        this.log.info({ netns: name }, 'removed the namespace of a task no longer assigned');
      }
    }).catch((err: unknown) => this.log.warn({ err }, 'removing stale task namespaces failed'));
  }

  /** Removes everything: task namespaces, the ingress sandbox, every network sandbox. */
  close(): Promise<void> {
    this.closed = true; // no new task from now on
    return this.serialize(async () => {
      this.rejectReady(new WorkerNetworkError('ERR_NETWORK_CLOSED', 'the network manager is closed'));
      await Promise.allSettled([...this.ownLane.values()]);
      this.laneTasks.clear();
      for (const t of this.tasks.values()) await runTolerating(['ip', 'netns', 'del', t.netnsName], GONE);
      this.tasks.clear();
      await this.ingress?.remove();
      this.ingress = null;
      await this.gwbridge?.remove();
      this.gwbridge = null;
      await this.plane?.close();
    });
  }

  // ------------------------------------------------------------------------------ internals

  private whenReady(): Promise<OverlayDataPlane> {
    const timeoutMs = this.opts.readyTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new WorkerNetworkError('ERR_NETWORK_NOT_READY', `the overlay data plane did not start within ${timeoutMs} ms (the node's address is not known yet)`)),
        timeoutMs,
      );
    });
    return Promise.race([this.ready, timeout]).finally(() => clearTimeout(timer));
  }

  private live(): OverlayDataPlane {
    if (this.closed) throw new WorkerNetworkError('ERR_NETWORK_CLOSED', 'the network manager is closed');
    if (this.plane === null) throw new WorkerNetworkError('ERR_NETWORK_NOT_READY', 'the overlay data plane is not started');
    return this.plane;
  }

  private async ensureNetwork(plane: OverlayDataPlane, network: Network): Promise<OverlayNetwork> {
    const existing = plane.getNetwork(network.ID);
    if (existing !== undefined) return existing;
    const spec = overlaySpecOf(network);
    if (spec === undefined) throw new WorkerNetworkError('ERR_NETWORK_INVALID', `network ${network.Spec.Name} is not an overlay network`);
    return plane.createNetwork(spec);
  }

  /** Peers and services of a network from its view (nothing when either is missing). */
  private async program(networkId: string): Promise<void> {
    const net = this.plane?.getNetwork(networkId);
    const view = this.views.get(networkId);
    if (net === undefined || view === undefined) return;
    const local = this.localAddr;
    const peers = [
      ...view.Tasks.filter((t) => t.NodeAddr !== local).flatMap((t) => t.Addresses.map((a) => ({ ip: stripPrefix(a), hostAddr: t.NodeAddr }))),
      ...view.Nodes.filter((n) => n.NodeAddr !== local).flatMap((n) => n.Addresses.map((a) => ({ ip: stripPrefix(a), hostAddr: n.NodeAddr }))),
    ];
    const services = view.Services.filter((s) => s.ServiceName !== '').map((s) => ({
      id: s.ServiceID,
      name: s.ServiceName,
      endpointMode: s.EndpointMode,
      ...(s.VirtualIP !== undefined ? { vip: stripPrefix(s.VirtualIP) } : {}),
      backends: view.Tasks.filter((t) => t.ServiceID === s.ServiceID && t.Running).flatMap((t) => t.Addresses.map(stripPrefix)),
      ...(s.Aliases !== undefined ? { aliases: s.Aliases } : {}),
    }));
    // Peers first: a backend's FDB/neighbour entries exist before any VIP rule sends traffic to it.
    const peersKey = JSON.stringify(peers);
    if (this.appliedPeers.get(net) !== peersKey) {
      this.appliedPeers.delete(net);
      await net.setPeers(peers);
      this.appliedPeers.set(net, peersKey);
    }
    await net.setServices(services);
  }

  /** The routing mesh: this node's ingress sandbox exists while the ingress view lists it. */
  private async syncIngress(): Promise<void> {
    const plane = this.plane;
    if (plane === null) return;
    const view = this.ingressNetworkId === null ? undefined : this.views.get(this.ingressNetworkId);
    const mine = view?.Nodes.find((n) => n.NodeID === this.opts.nodeId);
    if (view === undefined || mine === undefined || mine.Addresses[0] === undefined) {
      if (this.ingress !== null) {
        await this.ingress.remove();
        this.ingress = null;
        await this.dropUnused();
      }
      return;
    }
    const net = await this.ensureNetwork(plane, view.Network);
    await this.program(net.id);
    if (this.ingress === null) {
      this.ingress = await IngressSandbox.create({
        hostTag: this.opts.hostTag,
        network: net,
        address: stripPrefix(mine.Addresses[0]),
        logger: this.log,
        ...(this.opts.hostNetns !== undefined ? { hostNetns: this.opts.hostNetns } : {}),
      });
    }
    const ports: PublishedPort[] = [];
    for (const s of view.Services) {
      const backends = view.Tasks.filter((t) => t.ServiceID === s.ServiceID && t.Running).flatMap((t) => t.Addresses.map(stripPrefix));
      for (const p of s.Ports ?? []) {
        if (p.PublishedPort === undefined) continue;
        ports.push({ protocol: p.Protocol ?? 'tcp', publishedPort: p.PublishedPort, targetPort: p.TargetPort, backends });
      }
    }
    await this.ingress.setPorts(ports);
  }

  /** Made once (concurrent callers share the making; a failed one is tried again by the next task). */
  private ensureGatewayBridge(): Promise<GatewayBridge> {
    if (this.gwbridge !== null) return Promise.resolve(this.gwbridge);
    this.gwbridgeMaking ??= GatewayBridge.create({
      logger: this.log,
      ...(this.opts.hostNetns !== undefined ? { hostNetns: this.opts.hostNetns } : {}),
      ...(this.opts.gatewaySubnet !== undefined ? { subnet: this.opts.gatewaySubnet } : {}),
    }).then(
      (bridge) => {
        this.gwbridge = bridge;
        this.gwbridgeMaking = null;
        return bridge;
      },
      (err: unknown) => {
        this.gwbridgeMaking = null;
        throw err;
      },
    );
    return this.gwbridgeMaking;
  }

  /** Runs `fn` after the task's earlier lane operations (bounded: one chain per task, dropped when idle). */
  private inOwnLane<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.ownLane.get(taskId) ?? Promise.resolve()).then(fn, fn);
    const tail = next.catch(() => undefined);
    this.ownLane.set(taskId, tail);
    void tail.then(() => {
      if (this.ownLane.get(taskId) === tail) this.ownLane.delete(taskId);
    });
    return next;
  }

  /** A task on no overlay network: its namespace with an endpoint on the gateway bridge (its way out), the host's resolvers. */
  private prepareOnGatewayOnly(task: Task, hostPorts: readonly PortConfig[]): Promise<TaskNetworkConfig> {
    this.laneTasks.add(task.ID);
    return this.inOwnLane(task.ID, async () => {
      const known = this.tasks.get(task.ID);
      if (known !== undefined) return known.config;
      const closed = (): WorkerNetworkError => new WorkerNetworkError('ERR_NETWORK_CLOSED', 'the network manager is closed');
      if (this.closed) throw closed();
      const bridge = await this.ensureGatewayBridge();
      const netnsName = taskNetnsName(this.opts.hostTag, task.ID);
      const path = netnsPath(netnsName);
      // A namespace that exists already holds a container that survived a daemon restart.
      const made = !existsSync(path);
      let attached = false;
      try {
        const ports: HostPort[] = hostPorts.map((p) => ({ protocol: p.Protocol ?? 'tcp', publishedPort: p.PublishedPort!, targetPort: p.TargetPort }));
        await bridge.attach({ id: task.ID, containerNetns: path, ifName: 'eth0', ports, createNetns: made });
        attached = true;
        const resolvConf = taskResolvConf(await readHostResolvConfText(this.opts.hostResolvConf), task.Spec.ContainerSpec?.DNSConfig);
        if (this.closed) throw closed();
        const config: TaskNetworkConfig = { networkNamespacePath: path, resolvConf, ...(hostPorts.length > 0 ? { ports: hostPorts } : {}) };
        this.tasks.set(task.ID, { taskId: task.ID, netnsName, networkIds: [], gateway: true, config });
        this.log.info({ taskId: task.ID, networks: [], gateway: true }, 'task attached to its networks');
        return config;
      } catch (err) {
        if (attached) await bridge.detach(task.ID).catch(() => undefined);
        if (made) await runTolerating(['ip', 'netns', 'del', netnsName], GONE).catch(() => undefined);
        throw err;
      }
    });
  }

  private releaseOnGatewayOnly(taskId: string): Promise<void> {
    return this.inOwnLane(taskId, async () => {
      const t = this.tasks.get(taskId);
      this.tasks.delete(taskId);
      if (t?.gateway === true) await this.gwbridge?.detach(taskId);
      await runTolerating(['ip', 'netns', 'del', taskNetnsName(this.opts.hostTag, taskId)], GONE);
      this.laneTasks.delete(taskId);
    });
  }

  /**
   * Removes sandboxes no local task (nor the ingress sandbox) uses any more. The gateway bridge
   * stays until close(), as Docker's docker_gwbridge: making it again for the next task would cost
   * a dozen commands on the task's start.
   */
  private async dropUnused(): Promise<void> {
    const plane = this.plane;
    if (plane === null) return;
    const used = new Set<string>();
    for (const t of this.tasks.values()) for (const id of t.networkIds) used.add(id);
    if (this.ingress !== null && this.ingressNetworkId !== null) used.add(this.ingressNetworkId);
    for (const net of plane.listNetworks()) {
      if (used.has(net.id)) continue;
      await plane.removeNetwork(net.id);
      this.log.info({ networkId: net.id }, 'no local task uses the network any more: sandbox removed');
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
