// What a service's Endpoint and a task's network attachments should be, given the allocation
// state: pure decisions over store objects; the loop (allocator.ts) commits them.
import type { ReadTx } from '../store/memory-store.js';
import type { Endpoint, Network, NetworkAttachment, NetworkAttachmentConfig, PortConfig, Service, ServiceSpec, Task } from '../store/types.js';
import { AllocatorError } from './errors.js';
import { addrOfInterface } from './ipv4.js';
import type { AllocationState, NetworkAllocation } from './state.js';

type Protocol = 'tcp' | 'udp' | 'sctp';

/** A network reference (`Target`: an ID from the CLI, a name from stacks) → the network, or undefined. */
export function resolveNetwork(tx: ReadTx, target: string): Network | undefined {
  try {
    return tx.lookup('network', target);
  } catch {
    return undefined;
  }
}

/** Does the service publish a port through the routing mesh (and so attach to `ingress`)? */
export function needsIngress(ports: readonly PortConfig[] | undefined): boolean {
  return (ports ?? []).some((p) => (p.PublishMode ?? 'ingress') === 'ingress');
}

/**
 * Does a task of this service need anything from the allocator? Not when neither the task
 * template nor the service attaches to a network and the service publishes no port (an ingress
 * port attaches to `ingress`; a host-mode one is copied into the task): such a task gets no
 * attachment, so the orchestrators create it PENDING and spare every manager one write per task.
 * The allocator still owns the rule; a task created NEW (anything else) waits for its pass.
 */
export function needsAllocation(spec: Pick<ServiceSpec, 'TaskTemplate' | 'Networks' | 'EndpointSpec'>): boolean {
  return (spec.TaskTemplate.Networks ?? []).length > 0 || (spec.Networks ?? []).length > 0 || (spec.EndpointSpec?.Ports ?? []).length > 0;
}

/** The network attachments a task spec asks for, with the service's deprecated top-level `Networks`, deduplicated by network. */
function attachmentConfigs(specNetworks: readonly NetworkAttachmentConfig[] | undefined, serviceNetworks: readonly NetworkAttachmentConfig[] | undefined): NetworkAttachmentConfig[] {
  return [...(specNetworks ?? []), ...(serviceNetworks ?? [])];
}

interface Wanted {
  readonly alloc: NetworkAllocation;
  readonly config?: NetworkAttachmentConfig;
}

/** Resolves attachment configs to allocated networks; ingress first when wanted. Throws when one is missing or unallocated. */
function wantedNetworks(tx: ReadTx, st: AllocationState, configs: readonly NetworkAttachmentConfig[], ingress: boolean, owner: string): Wanted[] {
  const out: Wanted[] = [];
  const seen = new Set<string>();
  if (ingress) {
    const ing = st.ingress();
    if (ing === undefined) {
      throw new AllocatorError('ERR_ALLOC_NETWORK_MISSING', `${owner} publishes a port in ingress mode, but no ingress network is present: create one with 'network create --ingress -d overlay ingress', or publish in host mode`);
    }
    out.push({ alloc: ing });
    seen.add(ing.network.ID);
  }
  for (const c of configs) {
    const net = resolveNetwork(tx, c.Target);
    if (net === undefined) throw new AllocatorError('ERR_ALLOC_NETWORK_MISSING', `network ${c.Target} not found (${owner} attaches to it)`);
    const alloc = st.networks.get(net.ID);
    if (alloc === undefined) throw new AllocatorError('ERR_ALLOC_NETWORK_MISSING', `network ${net.Spec.Name} has no subnet allocated yet (${owner} attaches to it)`);
    if (seen.has(net.ID)) continue;
    seen.add(net.ID);
    out.push({ alloc, config: c });
  }
  return out;
}

/**
 * The service's Endpoint: its EndpointSpec, the ports with ingress ones published (a dynamic port
 * kept across updates), and in VIP mode one virtual IP per attached network (kept while the
 * network stays attached). Reserves in `st`; on failure releases what it took and throws.
 */
export function desiredEndpoint(tx: ReadTx, st: AllocationState, svc: Service): Endpoint {
  const spec = svc.Spec.EndpointSpec ?? {};
  const owner = { serviceId: svc.ID, serviceName: svc.Spec.Name };
  st.ports.releaseService(svc.ID);
  const ports: PortConfig[] = [];
  const previous = svc.Endpoint?.Ports ?? [];
  const keptPorts = new Set<string>();
  try {
    for (const p of spec.Ports ?? []) {
      const protocol: Protocol = p.Protocol ?? 'tcp';
      const mode = p.PublishMode ?? 'ingress';
      const port: PortConfig = { ...(p.Name !== undefined ? { Name: p.Name } : {}), Protocol: protocol, TargetPort: p.TargetPort, PublishedPort: p.PublishedPort ?? 0, PublishMode: mode };
      if (mode === 'ingress') {
        if ((p.PublishedPort ?? 0) > 0) {
          st.ports.reserve(protocol, p.PublishedPort!, owner);
        } else {
          const kept = previous.find((q) => q.TargetPort === p.TargetPort && (q.Protocol ?? 'tcp') === protocol && (q.PublishMode ?? 'ingress') === 'ingress' && (q.PublishedPort ?? 0) > 0 && !keptPorts.has(`${protocol}/${q.PublishedPort}`) && !(spec.Ports ?? []).some((s) => s.PublishedPort === q.PublishedPort && (s.Protocol ?? 'tcp') === protocol));
          const holder = kept === undefined ? undefined : st.ports.ownerOf(protocol, kept.PublishedPort!);
          if (kept !== undefined && (holder === undefined || holder.serviceId === svc.ID)) {
            st.ports.reserve(protocol, kept.PublishedPort!, owner);
            keptPorts.add(`${protocol}/${kept.PublishedPort}`);
            ports.push({ ...port, PublishedPort: kept.PublishedPort! });
            continue;
          }
          ports.push({ ...port, PublishedPort: st.ports.allocateDynamic(protocol, owner) });
          continue;
        }
      }
      ports.push(port);
    }
  } catch (err) {
    st.ports.releaseService(svc.ID);
    st.reserveServicePorts(svc); // back to what the store says it holds
    throw err;
  }
  const vips: { NetworkID: string; Addr: string }[] = [];
  if ((spec.Mode ?? 'vip') === 'vip') {
    const wanted = wantedNetworks(tx, st, attachmentConfigs(svc.Spec.TaskTemplate.Networks, svc.Spec.Networks), needsIngress(ports), `service ${svc.Spec.Name}`);
    const taken: { alloc: NetworkAllocation; addr: number }[] = [];
    try {
      for (const w of wanted) {
        const had = svc.Endpoint?.VirtualIPs?.find((v) => v.NetworkID === w.alloc.network.ID);
        const hadAddr = had === undefined ? null : addrOfInterface(had.Addr);
        if (hadAddr !== null && w.alloc.addresses.has(hadAddr) && had!.Addr === w.alloc.addresses.withPrefix(hadAddr)) {
          vips.push({ NetworkID: w.alloc.network.ID, Addr: had!.Addr });
          continue;
        }
        const addr = w.alloc.addresses.allocate();
        taken.push({ alloc: w.alloc, addr });
        vips.push({ NetworkID: w.alloc.network.ID, Addr: w.alloc.addresses.withPrefix(addr) });
      }
    } catch (err) {
      for (const t of taken) t.alloc.addresses.release(t.addr);
      throw err;
    }
  } else {
    // dnsrr: no VIPs, but the networks must still exist.
    wantedNetworks(tx, st, attachmentConfigs(svc.Spec.TaskTemplate.Networks, svc.Spec.Networks), false, `service ${svc.Spec.Name}`);
  }
  return { Spec: spec, ...(ports.length > 0 ? { Ports: ports } : {}), ...(vips.length > 0 ? { VirtualIPs: vips } : {}) };
}

/** One address per network the task attaches to (ingress first when its service publishes there). Reserves in `st`. */
export function taskAttachments(tx: ReadTx, st: AllocationState, task: Task, svc: Service | undefined): NetworkAttachment[] {
  const owner = `task ${task.ID}${svc !== undefined ? ` of service ${svc.Spec.Name}` : ''}`;
  const wanted = wantedNetworks(tx, st, attachmentConfigs(task.Spec.Networks, svc?.Spec.Networks), needsIngress(svc?.Endpoint?.Ports), owner);
  const out: NetworkAttachment[] = [];
  const taken: { alloc: NetworkAllocation; addr: number }[] = [];
  try {
    for (const w of wanted) {
      const addr = w.alloc.addresses.allocate();
      taken.push({ alloc: w.alloc, addr });
      const aliases = w.config?.Aliases;
      out.push({ Network: w.alloc.network, Addresses: [w.alloc.addresses.withPrefix(addr)], ...(aliases !== undefined && aliases.length > 0 ? { Aliases: aliases } : {}) });
    }
  } catch (err) {
    for (const t of taken) t.alloc.addresses.release(t.addr);
    throw err;
  }
  return out;
}
