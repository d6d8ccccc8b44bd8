// The overlay data plane of one host: its overlay networks, the container resolver they share,
// and the clean-up of leftovers after a crash.
//
//   const plane = new OverlayDataPlane({ hostTag: 'n1', underlayAddress: '192.168.1.10', underlayInterface: 'eth0' });
//   await plane.reconcile({ networkIds: assignedNetworkIds, containerNetns: liveContainerNetns });
//   const net = await plane.createNetwork({ id, name, vni, subnet, gateway, options });
//   const ep  = await net.attach({ id: taskId, containerNetns, ifName: 'eth0', ip });   // executor
//   await net.setPeers(peersFromAssignments);                                          // agent
//   await net.setServices(servicesOnThisNetwork);                                      // agent
//   await net.detach(taskId); await plane.removeNetwork(id); await plane.close();

import { existsSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { parseIpv4 } from './addresses.js';
import type { NetworkRecords } from './dns/records.js';
import { ContainerDns } from './dns/server.js';
import { readHostResolvConf, type Upstream } from './dns/upstream.js';
import { OverlayError } from './errors.js';
import { GONE, run, runTolerating } from './exec.js';
import { chainNetworkHash, checkHostTag, HOST_VXLAN_PREFIX, isSandboxTail, networkHash, networkTag, sandboxPrefix } from './names.js';
import { destroySandbox, netnsKey, OverlayNetwork } from './network.js';
import { validateNetworkSpec, type OverlayNetworkSpec } from './spec.js';
import { parseRuleState, renderRemoval } from './vip-rules.js';

export interface OverlayDataPlaneOptions {
  /** Distinguishes this host's sandboxes from other hosts' in a shared /run/netns (lab): [a-z0-9]{1,16}. */
  readonly hostTag: string;
  /** This host's underlay address: the VXLAN source, and what peers list as its hostAddr. */
  readonly underlayAddress: string;
  /** The interface carrying the underlay address. */
  readonly underlayInterface: string;
  /** The host's network namespace (a lab host); undefined = the daemon's own. */
  readonly hostNetns?: string;
  /** Where names not ours are forwarded; default: the nameservers of /etc/resolv.conf. */
  readonly upstreamResolvers?: readonly Upstream[];
  /** UDP port of the resolvers in the sandboxes (53). */
  readonly dnsPort?: number;
  readonly logger?: Logger;
}

export interface ReconcileRequest {
  /** Networks this host should have (from its assignments); the sandboxes of others are removed. */
  readonly networkIds: readonly string[];
  /** Network namespaces of the containers alive on this host: our chains of other networks are removed from them. */
  readonly containerNetns?: readonly string[];
}

export interface ReconcileReport {
  readonly namespaces: readonly string[];
  readonly links: readonly string[];
  readonly chains: readonly string[];
}

export class OverlayDataPlane {
  readonly dns: ContainerDns;
  private readonly networks = new Map<string, OverlayNetwork>();
  private readonly creating = new Set<string>();
  /** Containers' own resolvers (`--dns`), by netnsKey of the container's namespace. */
  private readonly containerResolvers = new Map<string, readonly Upstream[]>();
  private readonly log: Logger;

  constructor(private readonly options: OverlayDataPlaneOptions) {
    checkHostTag(options.hostTag);
    parseIpv4(options.underlayAddress);
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'overlay', host: options.hostTag });
    this.dns = new ContainerDns({
      upstreams: options.upstreamResolvers ?? readHostResolvConf().nameservers,
      view: (networkId, sourceIp) => this.viewOf(networkId, sourceIp),
      upstreamsFor: (networkId, sourceIp) => this.resolversOf(networkId, sourceIp),
      logger: this.log,
      ...(options.dnsPort !== undefined ? { port: options.dnsPort } : {}),
    });
  }

  /** Creates the network's sandbox on this host. A sandbox left by an earlier daemon is rebuilt. */
  async createNetwork(spec: OverlayNetworkSpec): Promise<OverlayNetwork> {
    validateNetworkSpec(spec);
    const tag = networkTag(spec.id);
    if (this.networks.has(spec.id) || this.creating.has(tag)) {
      throw new OverlayError('ERR_OVERLAY_NETWORK_EXISTS', `network ${spec.name} (${spec.id}) already exists on this host`);
    }
    for (const other of this.networks.values()) {
      if (networkTag(other.id) === tag) throw new OverlayError('ERR_OVERLAY_NETWORK_EXISTS', `network ${spec.id} has the same short id as ${other.id}`);
      if (other.spec.vni === spec.vni) throw new OverlayError('ERR_OVERLAY_NETWORK_EXISTS', `VNI ${spec.vni} of ${spec.name} is already used by ${other.spec.name}`);
    }
    this.creating.add(tag);
    try {
      const network = new OverlayNetwork(spec, { ...this.hostContext(), log: this.log });
      await destroySandbox(network.sandbox);
      await network.create();
      this.networks.set(spec.id, network);
      return network;
    } finally {
      this.creating.delete(tag);
    }
  }

  getNetwork(networkId: string): OverlayNetwork | undefined {
    return this.networks.get(networkId);
  }

  listNetworks(): readonly OverlayNetwork[] {
    return [...this.networks.values()];
  }

  async removeNetwork(networkId: string): Promise<void> {
    const network = this.networks.get(networkId);
    if (network === undefined) return;
    await network.remove();
    this.networks.delete(networkId);
  }

  /**
   * Removes what an earlier run (or a crash) left: sandboxes of this host not in `networkIds`,
   * vxlan devices stranded in the host netns, and our chains of other networks in the given
   * container namespaces. Run it at start-up, before creating networks.
   */
  async reconcile(request: ReconcileRequest): Promise<ReconcileReport> {
    const expectedTags = new Set(request.networkIds.map(networkTag));
    const expectedHashes = new Set(request.networkIds.map(networkHash));
    const namespaces: string[] = [];
    const links: string[] = [];
    const chains: string[] = [];

    for (const network of [...this.networks.values()]) {
      if (!expectedTags.has(networkTag(network.id))) await this.removeNetwork(network.id);
    }
    const prefix = sandboxPrefix(this.options.hostTag);
    const listed = await run(['ip', 'netns', 'list']);
    for (const line of listed.split('\n')) {
      const name = line.split(' ')[0] ?? '';
      if (!name.startsWith(prefix)) continue;
      const tag = name.slice(prefix.length);
      if (!isSandboxTail(tag)) continue;
      if (expectedTags.has(tag) || this.creating.has(tag)) continue;
      links.push(...(await destroySandbox(name)).map((l) => `${name}/${l}`));
      namespaces.push(name);
    }
    const liveVnis = new Set([...this.networks.values()].map((n) => `${HOST_VXLAN_PREFIX}${n.spec.vni}`));
    const hostLinks = await run(['ip', '-o', 'link', 'show', 'type', 'vxlan'], { netns: this.options.hostNetns });
    for (const line of hostLinks.split('\n')) {
      const name = /^\d+: ([^:@\s]+)/.exec(line)?.[1];
      if (name === undefined || !new RegExp(`^${HOST_VXLAN_PREFIX}\\d+$`).test(name) || liveVnis.has(name)) continue;
      if (this.creating.size > 0) continue; // a create in progress may own it
      await runTolerating(['ip', 'link', 'del', name], GONE, { netns: this.options.hostNetns });
      links.push(name);
    }
    for (const path of request.containerNetns ?? []) {
      if (!existsSync(path)) continue;
      const state = parseRuleState(await run(['iptables-save'], { netns: path }));
      const stale = (chain: string): boolean => {
        const hash = chainNetworkHash(chain);
        return hash !== undefined && !expectedHashes.has(hash);
      };
      const input = renderRemoval(state, stale);
      if (input === undefined) continue;
      await run(['iptables-restore', '--noflush'], { netns: path, input });
      chains.push(...[...state.nat.chains, ...state.filter.chains].filter(stale).map((c) => `${path}:${c}`));
    }
    if (namespaces.length + links.length + chains.length > 0) this.log.info({ namespaces, links, chains }, 'removed overlay leftovers');
    return { namespaces, links, chains };
  }

  /** Removes every network of this host and stops the resolvers. */
  async close(): Promise<void> {
    const errors: unknown[] = [];
    for (const id of [...this.networks.keys()]) {
      await this.removeNetwork(id).catch((e: unknown) => errors.push(e));
    }
    await this.dns.close();
    if (errors.length > 0) throw errors[0];
  }

  private hostContext(): Omit<ConstructorParameters<typeof OverlayNetwork>[1], 'log'> {
    return {
      hostTag: this.options.hostTag,
      underlayAddress: this.options.underlayAddress,
      underlayInterface: this.options.underlayInterface,
      hostNetns: this.options.hostNetns,
      dns: this.dns,
    };
  }

  /** Networks visible to whoever sent `sourceIp` on `networkId`: the arrival network first, then the asker's others. */
  /**
   * The resolvers a container's names outside the cluster go to (its `--dns` servers, as Docker's
   * embedded DNS forwards to them), instead of the host's; undefined or empty: the host's again.
   */
  setContainerResolvers(containerNetns: string, upstreams: readonly Upstream[] | undefined): void {
    const key = netnsKey(containerNetns);
    if (upstreams === undefined || upstreams.length === 0) this.containerResolvers.delete(key);
    else this.containerResolvers.set(key, upstreams);
  }

  private resolversOf(networkId: string, sourceIp: string): readonly Upstream[] | undefined {
    if (this.containerResolvers.size === 0) return undefined;
    const container = this.networks.get(networkId)?.containerOf(sourceIp);
    return container === undefined ? undefined : this.containerResolvers.get(container);
  }

  private viewOf(networkId: string, sourceIp: string): readonly NetworkRecords[] {
    const arrival = this.networks.get(networkId);
    if (arrival === undefined) return [];
    const container = arrival.containerOf(sourceIp);
    const view = [arrival.records()];
    if (container === undefined) return view;
    for (const other of this.networks.values()) {
      if (other !== arrival && other.hasContainer(container)) view.push(other.records());
    }
    return view;
  }
}

export { netnsKey };
