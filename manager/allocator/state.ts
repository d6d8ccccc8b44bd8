// What is allocated, derived from the store alone: every network's subnet and VNI, the addresses
// held by live tasks (observed state up to RUNNING), by services' VIPs and by nodes' ingress
// attachments, and the ingress ports services publish. Nothing else remembers an allocation, so
// a new leader (or a restarted one) rebuilds exactly what the old one had, and whatever leaves the
// store — a task that stopped, a removed service, network or node — is free again.
import type { Logger } from 'pino';

import { isAlive } from '../orchestrator/task-state.js';
import type { ReadTx } from '../store/memory-store.js';
import type { Cluster, IPAMOptions, Network, NetworkSpec, Service } from '../store/types.js';
import { AllocatorError } from './errors.js';
import { addrOfInterface, contains, formatAddr, formatCidr, overlaps, parseAddr, parseCidr, type Cidr } from './ipv4.js';
import { NetworkAddresses } from './network-addresses.js';
import { IngressPorts, type Protocol } from './ports.js';
import { nextFreeSubnet, parsePoolConfig, type AddressPoolConfig } from './subnet-pool.js';
import { VNI_OPTION, VniSet, vniOf } from './vni.js';

/** A network as the allocator sees it: allocated (subnet + VNI in the stored object) or not yet. */
export interface NetworkAllocation {
  readonly network: Network;
  readonly addresses: NetworkAddresses;
  readonly vni: number;
}

/** The IPAM and driver state a network gets when it is allocated (written into the Network object). */
export interface NetworkFields {
  readonly IPAMOptions: IPAMOptions;
  readonly DriverState: { readonly Name: string; readonly Options: Readonly<Record<string, string>> };
}

/** The cluster's address pool (Docker's defaults when swarm init gave none). */
export function poolOf(cluster: Cluster | undefined): AddressPoolConfig {
  try {
    return parsePoolConfig(cluster?.DefaultAddrPool, cluster?.SubnetSize);
  } catch {
    // A stored pool was checked at init; fall back rather than stop allocating.
    return parsePoolConfig(undefined, undefined);
  }
}

/** The subnet of an allocated network (its IPAMOptions), or of its spec (`--subnet`), or null. */
export function subnetOf(n: Network, fromSpec = false): Cidr | null {
  const text = (fromSpec ? n.Spec.IPAMOptions : n.IPAMOptions)?.Configs?.[0]?.Subnet;
  if (text === undefined || text === '') return null;
  try {
    return parseCidr(text, 'subnet');
  } catch {
    return null;
  }
}

export function isAllocated(n: Network): boolean {
  return subnetOf(n) !== null && vniOf(n.DriverState?.Options) !== null;
}

function protocolOf(p: { readonly Protocol?: string }): Protocol {
  return p.Protocol === 'udp' || p.Protocol === 'sctp' ? p.Protocol : 'tcp';
}

export class AllocationState {
  readonly networks = new Map<string, NetworkAllocation>();
  readonly vnis = new VniSet();
  readonly ports = new IngressPorts();
  /** Subnets taken: allocated networks' and the `--subnet` of networks not allocated yet. */
  readonly subnets: { readonly cidr: Cidr; readonly networkName: string }[] = [];
  /** Conflicts met while rebuilding (two holders of one address…), for the log. */
  readonly conflicts: string[] = [];

  private constructor(readonly pool: AddressPoolConfig) {}

  /** Networks, VNIs and the pool only (network create needs no more). */
  static networksFrom(tx: ReadTx): AllocationState {
    const st = new AllocationState(poolOf(tx.find('cluster')[0]));
    for (const n of tx.find('network')) st.addNetwork(n);
    return st;
  }

  /** Everything: networks, then every live holder of an address or an ingress port. */
  static fromStore(tx: ReadTx, log?: Logger): AllocationState {
    const st = AllocationState.networksFrom(tx);
    for (const s of tx.find('service')) {
      for (const v of s.Endpoint?.VirtualIPs ?? []) st.reserveAddr(v.NetworkID, v.Addr, `VIP of service ${s.Spec.Name}`);
      st.reserveServicePorts(s);
    }
    for (const t of tx.find('task')) {
      if (!isAlive(t)) continue;
      for (const a of t.NetworksAttachments ?? []) for (const addr of a.Addresses) st.reserveAddr(a.Network.ID, addr, `task ${t.ID}`);
    }
    for (const node of tx.find('node')) {
      for (const a of node.Attachments ?? []) for (const addr of a.Addresses) st.reserveAddr(a.Network.ID, addr, `node ${node.ID}`);
    }
    if (st.conflicts.length > 0) log?.warn({ conflicts: st.conflicts.slice(0, 20), count: st.conflicts.length }, 'allocations in the store overlap');
    return st;
  }

  private addNetwork(n: Network): void {
    const cidr = subnetOf(n);
    const vni = vniOf(n.DriverState?.Options);
    if (cidr === null || vni === null) {
      const wanted = subnetOf(n, true);
      if (wanted !== null) this.subnets.push({ cidr: wanted, networkName: n.Spec.Name });
      return;
    }
    this.subnets.push({ cidr, networkName: n.Spec.Name });
    if (!this.vnis.reserve(vni)) this.conflicts.push(`VXLAN ID ${vni} of network ${n.Spec.Name} is held twice`);
    const cfg = n.IPAMOptions?.Configs?.[0];
    const gw = parseAddr(cfg?.Gateway ?? '') ?? cidr.base + 1;
    let range = cidr;
    if (cfg?.Range !== undefined && cfg.Range !== '') {
      try {
        range = parseCidr(cfg.Range, 'range');
      } catch {
        range = cidr;
      }
    }
    this.networks.set(n.ID, { network: n, addresses: new NetworkAddresses(n.Spec.Name, cidr, gw, range), vni });
  }

  private reserveAddr(networkId: string, text: string, holder: string): void {
    const net = this.networks.get(networkId);
    const addr = addrOfInterface(text);
    if (net === undefined || addr === null) return; // network gone: nothing to hold
    if (!net.addresses.reserve(addr) && contains(net.addresses.subnet, addr) && addr !== net.addresses.gateway) {
      this.conflicts.push(`${formatAddr(addr)} on ${net.network.Spec.Name} (${holder}) is held twice`);
    }
  }

  /** Ingress ports a service holds: the allocated ones and (not yet allocated) the ones its spec asks for. */
  reserveServicePorts(s: Service): void {
    const owner = { serviceId: s.ID, serviceName: s.Spec.Name };
    for (const p of [...(s.Endpoint?.Ports ?? []), ...(s.Spec.EndpointSpec?.Ports ?? [])]) {
      if ((p.PublishMode ?? 'ingress') !== 'ingress' || (p.PublishedPort ?? 0) === 0) continue;
      if (this.ports.ownerOf(protocolOf(p), p.PublishedPort!) === undefined) this.ports.reserve(protocolOf(p), p.PublishedPort!, owner);
    }
  }

  ingress(): NetworkAllocation | undefined {
    for (const n of this.networks.values()) if (n.network.Spec.Ingress === true) return n;
    return undefined;
  }

  /**
   * Subnet, gateway and VNI for a network: its `--subnet`/`--gateway`/`--ip-range` if given
   * (refused when it overlaps another network), else the next free subnet of the pool with the
   * first address as gateway. The VNI is the lowest free one from 4096. Reserves them here.
   */
  allocateNetwork(name: string, spec: NetworkSpec): NetworkFields {
    const cfg = spec.IPAMOptions?.Configs?.[0];
    let subnet: Cidr;
    if (cfg?.Subnet !== undefined && cfg.Subnet !== '') {
      subnet = parseCidr(cfg.Subnet, `network ${name}: subnet`);
      const clash = this.subnets.find((s) => overlaps(s.cidr, subnet));
      if (clash !== undefined) {
        throw new AllocatorError(
          'ERR_ALLOC_SUBNET_OVERLAP',
          `invalid pool request: Pool overlaps with other one on this address space (network ${name}'s subnet ${formatCidr(subnet)} overlaps ${formatCidr(clash.cidr)} of network ${clash.networkName})`,
        );
      }
    } else {
      subnet = nextFreeSubnet(this.pool, this.subnets.map((s) => s.cidr));
    }
    let gateway = subnet.base + 1;
    if (cfg?.Gateway !== undefined && cfg.Gateway !== '') {
      const g = parseAddr(cfg.Gateway);
      if (g === null || !contains(subnet, g) || g === subnet.base || g === subnet.base + 2 ** (32 - subnet.prefixLength) - 1) {
        throw new AllocatorError('ERR_ALLOC_INVALID_SUBNET', `network ${name}: gateway ${cfg.Gateway} is not a host address of ${formatCidr(subnet)}`);
      }
      gateway = g;
    }
    const vni = this.vnis.allocate();
    this.subnets.push({ cidr: subnet, networkName: name });
    const config: { Subnet: string; Gateway: string; Range?: string } = { Subnet: formatCidr(subnet), Gateway: formatAddr(gateway) };
    if (cfg?.Range !== undefined && cfg.Range !== '') config.Range = cfg.Range;
    return {
      IPAMOptions: { Driver: { Name: spec.IPAMOptions?.Driver?.Name ?? 'default', ...(spec.IPAMOptions?.Driver?.Options !== undefined ? { Options: spec.IPAMOptions.Driver.Options } : {}) }, Configs: [config] },
      DriverState: { Name: 'overlay', Options: { ...(spec.DriverConfiguration?.Options ?? {}), [VNI_OPTION]: String(vni) } },
    };
  }

  /** Registers a network just allocated in this pass, so addresses can come from it at once. */
  track(n: Network): void {
    if (!this.networks.has(n.ID)) {
      // allocateNetwork already counted its subnet and VNI.
      const before = this.subnets.length;
      const vni = vniOf(n.DriverState?.Options);
      if (vni !== null) this.vnis.release(vni);
      this.addNetwork(n);
      this.subnets.splice(before, this.subnets.length - before);
    }
  }
}
