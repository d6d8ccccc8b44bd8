// Published ports of the routing mesh: an ingress-mode port is taken on every node, so it is
// allocated cluster-wide, per protocol. `--publish 80` (no published port) gets a dynamic one from
// 30000–32767, Docker's range, lowest free first. Host-mode ports are not allocated here: they are
// taken per node, which the scheduler's host-port filter keeps apart.
import { AllocatorError } from './errors.js';

export const DYNAMIC_PORT_FIRST = 30000;
export const DYNAMIC_PORT_LAST = 32767;

export type Protocol = 'tcp' | 'udp' | 'sctp';

export interface PortOwner {
  readonly serviceId: string;
  readonly serviceName: string;
}

export class IngressPorts {
  private readonly owners = new Map<string, PortOwner>();
  /** Per protocol, no dynamic port below this one is free (keeps a run of allocations linear). */
  private readonly lowestFree = new Map<Protocol, number>();

  private static key(protocol: Protocol, port: number): string {
    return `${protocol}/${port}`;
  }

  ownerOf(protocol: Protocol, port: number): PortOwner | undefined {
    return this.owners.get(IngressPorts.key(protocol, port));
  }

  /** Takes a port for a service; refuses one another service holds, naming it (swarmkit's wording). */
  reserve(protocol: Protocol, port: number, owner: PortOwner): void {
    const key = IngressPorts.key(protocol, port);
    const holder = this.owners.get(key);
    if (holder !== undefined && holder.serviceId !== owner.serviceId) {
      throw new AllocatorError('ERR_ALLOC_PORT_IN_USE', `port '${port}' is already in use by service '${holder.serviceName}' (${holder.serviceId}) as an ingress port`);
    }
    this.owners.set(key, owner);
  }

  /** Every port a service holds goes (before its ports are allocated again, or when it is removed). */
  releaseService(serviceId: string): void {
    for (const [k, o] of this.owners) if (o.serviceId === serviceId) this.owners.delete(k);
    this.lowestFree.clear();
  }

  /** The lowest free port of 30000–32767 for this protocol. */
  allocateDynamic(protocol: Protocol, owner: PortOwner): number {
    for (let p = this.lowestFree.get(protocol) ?? DYNAMIC_PORT_FIRST; p <= DYNAMIC_PORT_LAST; p++) {
      if (this.owners.has(IngressPorts.key(protocol, p))) continue;
      this.owners.set(IngressPorts.key(protocol, p), owner);
      this.lowestFree.set(protocol, p + 1);
      return p;
    }
    this.lowestFree.set(protocol, DYNAMIC_PORT_LAST + 1);
    throw new AllocatorError(
      'ERR_ALLOC_PORTS_EXHAUSTED',
      `no free dynamic ${protocol} port left for service ${owner.serviceName}: ${DYNAMIC_PORT_FIRST}–${DYNAMIC_PORT_LAST} are all published; give --publish a port explicitly or remove services`,
    );
  }
}
