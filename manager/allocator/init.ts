// What `swarm init` puts in the store for networking, in the same transaction as the Cluster
// object: the address pool (Cluster.DefaultAddrPool / SubnetSize) and the `ingress` network,
// allocated at once — the pool's first subnet (10.0.0.0/24 by default, as Docker) and VNI 4096.
import type { NetworkSpec, NewObject } from '../store/types.js';
import { formatAddr, formatCidr } from './ipv4.js';
import { parsePoolConfig, type AddressPoolConfig } from './subnet-pool.js';
import { FIRST_VNI, VNI_OPTION } from './vni.js';

export const INGRESS_NAME = 'ingress';

export function ingressSpec(): NetworkSpec {
  return { Name: INGRESS_NAME, DriverConfiguration: { Name: 'overlay' }, Ingress: true, IPAMOptions: { Driver: { Name: 'default' } }, Scope: 'swarm' };
}

/** The ingress network, allocated from the first subnet of the pool. */
export function ingressNetwork(pool: AddressPoolConfig): NewObject<'network'> {
  const first = pool.pools[0]!;
  const subnet = { base: first.base, prefixLength: pool.subnetSize };
  const gateway = subnet.base + 1;
  return {
    Spec: ingressSpec(),
    DriverState: { Name: 'overlay', Options: { [VNI_OPTION]: String(FIRST_VNI) } },
    IPAMOptions: { Driver: { Name: 'default' }, Configs: [{ Subnet: formatCidr(subnet), Gateway: formatAddr(gateway) }] },
  };
}

/**
 * Checks swarm init's `DefaultAddrPool` / `SubnetSize` (throws AllocatorError with a message for
 * the user) and answers the Cluster fields and the ingress network to create.
 */
export function initialAllocation(defaultAddrPool: readonly string[] | undefined, subnetSize: number | undefined): {
  readonly cluster: { readonly DefaultAddrPool: readonly string[]; readonly SubnetSize: number };
  readonly ingress: NewObject<'network'>;
} {
  const pool = parsePoolConfig(defaultAddrPool, subnetSize);
  return { cluster: { DefaultAddrPool: pool.pools.map(formatCidr), SubnetSize: pool.subnetSize }, ingress: ingressNetwork(pool) };
}
