// One overlay network on one host: its sandbox netns (bridge + vxlan), the local endpoints
// (a veth into each container), the remote endpoints (static FDB/neighbour entries), the
// services' VIP rules in every local container, and the DNS resolver on the gateway address.
// Created by OverlayDataPlane.createNetwork; every method is serialized per network.

import { statSync, existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { inSubnet, macFromIpv4, normalizeMac, parseIpv4, parseSubnet, type Subnet } from './addresses.js';
import type { ContainerDns } from './dns/server.js';
import type { NetworkRecords } from './dns/records.js';
import { OverlayError } from './errors.js';
import { GONE, run, runTolerating } from './exec.js';
import { BRIDGE_NAME, hostVxlanName, netnsPath, sandboxName, sandboxVethName, VXLAN_NAME } from './names.js';
import { diffMaps, normalizePeer, parseFdb, parseNeighbours, type Peer } from './peers.js';
import { OVERLAY_MTU, VXLAN_PORT, type AttachedEndpoint, type EndpointSpec, type OverlayNetworkSpec, type PeerSpec, type ServiceSpec } from './spec.js';
import { parseRuleState, renderNetworkRemoval, renderNetworkRules, ruleStateAfter, type NetnsRuleState } from './vip-rules.js';

/** What a network needs from the host it lives on. */
export interface HostContext {
  readonly hostTag: string;
  readonly underlayAddress: string;
  readonly underlayInterface: string;
  /** Path of the host's network namespace; undefined = the daemon's own. */
  readonly hostNetns: string | undefined;
  readonly dns: ContainerDns;
  readonly log: Logger;
}

interface LocalEndpoint {
  readonly id: string;
  readonly containerNetns: string;
  /** dev:ino of the container's netns: the same container seen through two paths is one container. */
  readonly containerKey: string;
  readonly ifName: string;
  readonly ip: string;
  readonly mac: string;
  readonly sandboxVeth: string;
}

export interface PeerUpdate {
  readonly fdbAdded: number;
  readonly fdbRemoved: number;
  readonly neighboursAdded: number;
  readonly neighboursRemoved: number;
}

const IF_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function netnsKey(path: string): string {
  const st = statSync(path);
  return `${st.dev}:${st.ino}`;
}

export class OverlayNetwork {
  readonly sandbox: string;
  readonly sandboxPath: string;
  private readonly subnet: Subnet;
  private readonly endpoints = new Map<string, LocalEndpoint>();
  private services: readonly ServiceSpec[] = [];
  /**
   * Per container netns: this network's rule state as last written, and the services it was
   * written from. An update renders from it instead of reading `iptables-save` first, and a
   * container whose services did not change is not touched. Dropped on any failure (the next
   * update reads the kernel again) and when the network's rules leave the container.
   */
  private readonly written = new Map<string, { readonly state: NetnsRuleState; readonly servicesKey: string }>();
  private queue: Promise<unknown> = Promise.resolve();
  private removed = false;
  private readonly log: Logger;

  /** @internal use OverlayDataPlane.createNetwork */
  constructor(
    readonly spec: OverlayNetworkSpec,
    private readonly host: HostContext,
  ) {
    this.sandbox = sandboxName(host.hostTag, spec.id);
    this.sandboxPath = netnsPath(this.sandbox);
    this.subnet = parseSubnet(spec.subnet);
    this.log = host.log.child({ network: spec.name, networkId: spec.id });
  }

  get id(): string {
    return this.spec.id;
  }

  /** The resolver address to put in containers' resolv.conf. */
  get nameserver(): string {
    return this.spec.gateway;
  }

  /** Builds the sandbox: called once by the data plane. */
  async create(): Promise<void> {
    await this.serialize(async () => {
      try {
        await this.build();
      } catch (e) {
        this.log.warn({ err: e }, 'creating the overlay sandbox failed; removing what was made');
        await this.teardown().catch((err: unknown) => this.log.error({ err }, 'cleanup after a failed create failed'));
        this.removed = true;
        throw e;
      }
    });
  }

  private async build(): Promise<void> {
    const { spec, host } = this;
    const temp = hostVxlanName(spec.vni);
    // A leftover of a crash between "add" and "move" would make the add fail.
    await runTolerating(['ip', 'link', 'del', temp], GONE, { netns: host.hostNetns });
    await run(['ip', 'netns', 'add', this.sandbox]);
    // The vxlan is made in the host netns and moved: its UDP socket (4789) stays in the host netns,
    // bound to the underlay, while the device itself is switched by the sandbox's bridge.
    await run(
      ['ip', 'link', 'add', temp, 'type', 'vxlan', 'id', String(spec.vni), 'dstport', String(VXLAN_PORT),
        'local', host.underlayAddress, 'dev', host.underlayInterface, 'nolearning', 'proxy'],
      { netns: host.hostNetns },
    );
    await run(['ip', 'link', 'set', temp, 'netns', this.sandbox], { netns: host.hostNetns });
    await this.ipBatch(this.sandboxPath, [
      'link set lo up',
      // A fixed MAC (the gateway's, 02:42:<ip>): a bridge left to itself takes the lowest MAC of its
      // ports, so a new endpoint could change the gateway's MAC under the containers' ARP caches
      // (measured: DNS and VIP traffic of the other local tasks lost for ~30 s, until re-ARP).
      `link add ${BRIDGE_NAME} address ${macFromIpv4(spec.gateway)} type bridge`,
      `link set ${temp} name ${VXLAN_NAME} mtu ${OVERLAY_MTU}`,
      `link set ${VXLAN_NAME} master ${BRIDGE_NAME}`,
      `addr add ${spec.gateway}/${this.subnet.prefixLength} dev ${BRIDGE_NAME}`,
      `link set ${VXLAN_NAME} up`,
      `link set ${BRIDGE_NAME} up`,
    ]);
    if (spec.dns !== false) await host.dns.start(spec.id, this.sandboxPath, spec.gateway);
    this.log.info({ sandbox: this.sandbox, vni: spec.vni }, 'overlay sandbox created');
  }

  /** Connects a local container: a veth whose container end gets the address, MTU and default route. */
  attach(endpoint: EndpointSpec): Promise<AttachedEndpoint> {
    return this.serialize(async () => {
      this.assertLive();
      const ep = this.checkEndpoint(endpoint);
      try {
        await run(
          ['ip', 'link', 'add', ep.ifName, 'address', ep.mac, 'mtu', String(OVERLAY_MTU), 'type', 'veth',
            'peer', 'name', ep.sandboxVeth, 'mtu', String(OVERLAY_MTU), 'netns', this.sandbox],
          { netns: ep.containerNetns },
        );
        await run(['ip', 'link', 'set', ep.sandboxVeth, 'master', BRIDGE_NAME, 'up'], { netns: this.sandboxPath });
        const inside = ['link set lo up', `addr add ${ep.ip}/${this.subnet.prefixLength} dev ${ep.ifName}`, `link set ${ep.ifName} up`];
        if (endpoint.defaultRoute !== false) inside.push(`route add default via ${this.spec.gateway} dev ${ep.ifName}`);
        await this.ipBatch(ep.containerNetns, inside);
        this.written.delete(ep.containerNetns); // a new endpoint starts from what the kernel holds
        await this.programRules(ep.containerNetns);
      } catch (e) {
        await this.unwire(ep).catch((err: unknown) => this.log.error({ err, endpoint: ep.id }, 'cleanup after a failed attach failed'));
        throw e;
      }
      this.endpoints.set(ep.id, ep);
      this.log.info({ endpoint: ep.id, ip: ep.ip, ifName: ep.ifName }, 'endpoint attached');
      return {
        id: ep.id, ifName: ep.ifName, ip: ep.ip, mac: ep.mac, prefixLength: this.subnet.prefixLength,
        gateway: this.spec.gateway, nameserver: this.spec.gateway,
      };
    });
  }

  /** Disconnects a local container: its veth and this network's rules in its netns go. Unknown ids are a no-op. */
  detach(endpointId: string): Promise<void> {
    return this.serialize(async () => {
      const ep = this.endpoints.get(endpointId);
      if (ep === undefined) return;
      await this.unwire(ep);
      this.endpoints.delete(endpointId);
      this.log.info({ endpoint: endpointId }, 'endpoint detached');
    });
  }

  /** Makes the remote endpoints exactly `peers`, touching only the entries that changed. */
  setPeers(peers: readonly PeerSpec[]): Promise<PeerUpdate> {
    return this.serialize(async () => {
      this.assertLive();
      const wanted = new Map<string, Peer>();
      for (const spec of peers) {
        const peer = normalizePeer(spec);
        // Our own endpoints are reached through the bridge, not the vxlan.
        if (peer.hostAddr === this.host.underlayAddress) continue;
        if (!inSubnet(peer.ip, this.subnet)) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `network ${this.spec.name}: peer ${peer.ip} is not in ${this.spec.subnet}`);
        wanted.set(peer.ip, peer);
      }
      const wantedFdb = new Map([...wanted.values()].map((p) => [p.mac, p.hostAddr] as const));
      const wantedNeigh = new Map([...wanted.values()].map((p) => [p.ip, p.mac] as const));
      // Diff against the kernel, not a memory of it: correct after a partial failure or a restart.
      const [fdbText, neighText] = await Promise.all([
        run(['bridge', 'fdb', 'show', 'dev', VXLAN_NAME], { netns: this.sandboxPath }),
        run(['ip', 'neigh', 'show', 'dev', VXLAN_NAME], { netns: this.sandboxPath }),
      ]);
      const fdb = diffMaps(parseFdb(fdbText), wantedFdb);
      const neigh = diffMaps(parseNeighbours(neighText), wantedNeigh);
      const fdbLines = [
        ...fdb.remove.map(([mac, dst]) => `fdb del ${mac} dev ${VXLAN_NAME} dst ${dst} self`),
        ...fdb.upsert.map(([mac, dst]) => `fdb replace ${mac} dev ${VXLAN_NAME} dst ${dst} self permanent`),
      ];
      const neighLines = [
        ...neigh.remove.map(([ip]) => `neigh del ${ip} dev ${VXLAN_NAME}`),
        ...neigh.upsert.map(([ip, mac]) => `neigh replace ${ip} lladdr ${mac} dev ${VXLAN_NAME} nud permanent`),
      ];
      if (fdbLines.length > 0) await run(['bridge', '-batch', '-'], { netns: this.sandboxPath, input: fdbLines.join('\n') + '\n' });
      if (neighLines.length > 0) await this.ipBatch(this.sandboxPath, neighLines);
      const update = { fdbAdded: fdb.upsert.length, fdbRemoved: fdb.remove.length, neighboursAdded: neigh.upsert.length, neighboursRemoved: neigh.remove.length };
      if (fdbLines.length + neighLines.length > 0) this.log.debug(update, 'peers updated');
      return update;
    });
  }

  /** Makes the network's services exactly `services`: VIP rules in every local container, and DNS records. */
  setServices(services: readonly ServiceSpec[]): Promise<void> {
    return this.serialize(async () => {
      this.assertLive();
      for (const s of services) this.checkService(s);
      const next = services.map((s) => ({ ...s, backends: [...s.backends], ...(s.aliases ? { aliases: [...s.aliases] } : {}) }));
      const containers = new Map<string, string>();
      for (const ep of this.endpoints.values()) containers.set(ep.containerKey, ep.containerNetns);
      // Rules first, names after: a container that resolves a new service's name already has its
      // VIP rules (else its first connection goes to the bare VIP, on-link, and hangs on ARP).
      const written = await Promise.allSettled([...containers.values()].map((path) => this.programRules(path, next)));
      this.services = next;
      const failed = written.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    });
  }

  /** Removes everything this network made on the host: endpoints, rules, resolver, sandbox. */
  remove(): Promise<void> {
    return this.serialize(async () => {
      if (this.removed) return;
      this.removed = true;
      await this.teardown();
      this.log.info({ sandbox: this.sandbox }, 'overlay network removed');
    });
  }

  /** DNS records of this network (for the host's resolver). */
  records(): NetworkRecords {
    return { networkId: this.spec.id, services: this.services };
  }

  /** The container (netns key) owning `ip` on this network, if it is a local endpoint. */
  containerOf(ip: string): string | undefined {
    for (const ep of this.endpoints.values()) if (ep.ip === ip) return ep.containerKey;
    return undefined;
  }

  hasContainer(containerKey: string): boolean {
    for (const ep of this.endpoints.values()) if (ep.containerKey === containerKey) return true;
    return false;
  }

  localEndpoints(): ReadonlyArray<{ readonly id: string; readonly ip: string; readonly mac: string }> {
    return [...this.endpoints.values()].map(({ id, ip, mac }) => ({ id, ip, mac }));
  }

  private async teardown(): Promise<void> {
    await this.host.dns.stop(this.spec.id);
    for (const ep of this.endpoints.values()) {
      await this.unwire(ep).catch((err: unknown) => this.log.warn({ err, endpoint: ep.id }, 'detaching an endpoint during removal failed'));
    }
    this.endpoints.clear();
    await destroySandbox(this.sandbox);
    await runTolerating(['ip', 'link', 'del', hostVxlanName(this.spec.vni)], GONE, { netns: this.host.hostNetns });
  }

  private async unwire(ep: LocalEndpoint): Promise<void> {
    this.written.delete(ep.containerNetns);
    if (existsSync(ep.containerNetns)) await this.removeRules(ep.containerNetns, ep.containerKey, ep.id);
    await runTolerating(['ip', 'link', 'del', ep.sandboxVeth], GONE, { netns: this.sandboxPath });
  }

  /** Writes this network's VIP chains into a container netns (one iptables-restore transaction). */
  private async programRules(containerNetns: string, services: readonly ServiceSpec[] = this.services): Promise<void> {
    const servicesKey = JSON.stringify(services);
    const known = this.written.get(containerNetns);
    if (known?.servicesKey === servicesKey) return;
    this.written.delete(containerNetns);
    const state = known?.state ?? parseRuleState(await run(['iptables-save'], { netns: containerNetns }));
    await run(['iptables-restore', '--noflush'], { netns: containerNetns, input: renderNetworkRules(this.spec.id, services, state) });
    this.written.set(containerNetns, { state: ruleStateAfter(this.spec.id, services), servicesKey });
  }

  /** Drops this network's chains from a container netns, unless another endpoint of this network still uses that netns. */
  private async removeRules(containerNetns: string, containerKey: string, leavingId: string): Promise<void> {
    for (const other of this.endpoints.values()) if (other.id !== leavingId && other.containerKey === containerKey) return;
    this.written.delete(containerNetns);
    const state = parseRuleState(await run(['iptables-save'], { netns: containerNetns }));
    const input = renderNetworkRemoval(this.spec.id, state);
    if (input !== undefined) await run(['iptables-restore', '--noflush'], { netns: containerNetns, input });
  }

  private checkEndpoint(spec: EndpointSpec): LocalEndpoint {
    const where = `network ${this.spec.name}, endpoint ${spec.id}`;
    if (this.endpoints.has(spec.id)) throw new OverlayError('ERR_OVERLAY_ENDPOINT_EXISTS', `${where}: already attached`);
    if (!IF_NAME.test(spec.ifName)) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `${where}: interface name ${JSON.stringify(spec.ifName)} must be 1-15 of [A-Za-z0-9_.-]`);
    parseIpv4(spec.ip);
    if (!inSubnet(spec.ip, this.subnet)) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `${where}: address ${spec.ip} is not in ${this.spec.subnet}`);
    if (spec.ip === this.spec.gateway) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `${where}: address ${spec.ip} is the network's gateway`);
    for (const ep of this.endpoints.values()) {
      if (ep.ip === spec.ip) throw new OverlayError('ERR_OVERLAY_ENDPOINT_EXISTS', `${where}: address ${spec.ip} is already used by endpoint ${ep.id}`);
    }
    if (!existsSync(spec.containerNetns)) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `${where}: container network namespace ${spec.containerNetns} does not exist`);
    return {
      id: spec.id,
      containerNetns: spec.containerNetns,
      containerKey: netnsKey(spec.containerNetns),
      ifName: spec.ifName,
      ip: spec.ip,
      mac: spec.mac === undefined ? macFromIpv4(spec.ip) : normalizeMac(spec.mac),
      sandboxVeth: sandboxVethName(`${this.spec.id}/${spec.id}`),
    };
  }

  private checkService(s: ServiceSpec): void {
    const where = `network ${this.spec.name}, service ${s.name}`;
    if (s.endpointMode === 'vip') {
      if (s.vip === undefined) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `${where}: vip mode without a VIP`);
      if (!inSubnet(s.vip, this.subnet)) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `${where}: VIP ${s.vip} is not in ${this.spec.subnet}`);
    }
    for (const b of s.backends) parseIpv4(b);
  }

  private assertLive(): void {
    if (this.removed) throw new OverlayError('ERR_OVERLAY_REMOVED', `network ${this.spec.name} was removed from this host`);
  }

  private async ipBatch(netns: string, lines: readonly string[]): Promise<void> {
    await run(['ip', '-batch', '-'], { netns, input: lines.join('\n') + '\n' });
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/**
 * Deletes a sandbox netns and what is in it. Processes still inside (a resolver left by a crashed
 * daemon) are killed first — they would keep the namespace, and the vxlan's VNI, alive after the
 * name is gone. Links are deleted explicitly so the container ends of veths and the vxlan's UDP
 * socket are gone when this returns, not when the kernel gets round to freeing the namespace.
 */
export async function destroySandbox(sandbox: string): Promise<readonly string[]> {
  const path = netnsPath(sandbox);
  if (!existsSync(path)) return [];
  const pids = (await runTolerating(['ip', 'netns', 'pids', sandbox], GONE)) ?? '';
  for (const pid of pids.split(/\s+/).filter((p) => /^\d+$/.test(p))) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const links = (await runTolerating(['ip', '-o', 'link', 'show'], GONE, { netns: path })) ?? '';
  const names = links
    .split('\n')
    .map((l) => /^\d+: ([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && n !== 'lo');
  const ordered = [...names.filter((n) => n !== BRIDGE_NAME), ...names.filter((n) => n === BRIDGE_NAME)];
  for (const name of ordered) await runTolerating(['ip', 'link', 'del', name], GONE, { netns: path });
  await runTolerating(['ip', 'netns', 'del', sandbox], GONE);
  return ordered;
}
