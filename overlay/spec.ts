// What callers hand the data plane, and the checks made before anything is created.

import { inSubnet, isIpv4, parseSubnet } from './addresses.js';
import { EncryptedOverlayUnsupportedError, OverlayError } from './errors.js';

export const OVERLAY_MTU = 1450;
export const VXLAN_PORT = 4789;
/** VNIs below 4096 are left to others, as swarm's allocator does. */
export const MIN_VNI = 4096;
export const MAX_VNI = 16_777_215;

/** One overlay network as the allocator describes it (from the assignment). */
export interface OverlayNetworkSpec {
  readonly id: string;
  /** The user's name for the network (messages and DNS logs only). */
  readonly name: string;
  readonly vni: number;
  /** e.g. '10.0.1.0/24' */
  readonly subnet: string;
  /** e.g. '10.0.1.1' — lives on the sandbox bridge; containers route and resolve through it. */
  readonly gateway: string;
  /** `network create --opt k=v` driver options. */
  readonly options?: Readonly<Record<string, string>>;
  /** Run the resolver on the gateway (default true; false for `ingress`, which has no service discovery, as Docker). */
  readonly dns?: boolean;
}

/** Refuses what this data plane cannot do, before anything is created. Exported for the manager's control API. */
export function validateOverlayOptions(networkName: string, options: Readonly<Record<string, string>> | undefined): void {
  if (options === undefined) return;
  if (Object.prototype.hasOwnProperty.call(options, 'encrypted')) {
    // docker passes `--opt encrypted` as {"encrypted": ""}; any value asks for encryption.
    throw new EncryptedOverlayUnsupportedError(networkName);
  }
}

export function validateNetworkSpec(spec: OverlayNetworkSpec): void {
  validateOverlayOptions(spec.name, spec.options);
  if (!Number.isInteger(spec.vni) || spec.vni < MIN_VNI || spec.vni > MAX_VNI) {
    throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `network ${spec.name}: VNI ${spec.vni} is outside ${MIN_VNI}-${MAX_VNI}`);
  }
  const subnet = parseSubnet(spec.subnet);
  if (!isIpv4(spec.gateway) || !inSubnet(spec.gateway, subnet)) {
    throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `network ${spec.name}: gateway ${spec.gateway} is not an address of ${spec.subnet}`);
  }
  if (spec.id.trim() === '') throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `network ${spec.name}: empty network id`);
}

/** A local task's attachment, from the executor that made the container's network namespace. */
export interface EndpointSpec {
  /** Unique per (network, task): the task id is fine. */
  readonly id: string;
  /** Path of the container's network namespace, e.g. /run/netns/X or /proc/PID/ns/net. */
  readonly containerNetns: string;
  /** Interface name inside the container: eth0, eth1, … (the executor numbers networks). */
  readonly ifName: string;
  /** The task's address on this network (from the allocator), without prefix length. */
  readonly ip: string;
  /** Defaults to 02:42 + the address bytes, as Docker does. */
  readonly mac?: string;
  /** Install the default route via the network's gateway (default true); false for a container's second network. */
  readonly defaultRoute?: boolean;
}

/** A task of this network running on another host (from the dispatcher's peer list). */
export interface PeerSpec {
  readonly ip: string;
  /** Defaults to 02:42 + the address bytes. */
  readonly mac?: string;
  /** The underlay address of the host running it (its VXLAN endpoint). */
  readonly hostAddr: string;
}

/** A service with tasks on this network. */
export interface ServiceSpec {
  readonly id: string;
  readonly name: string;
  readonly endpointMode: 'vip' | 'dnsrr';
  /** The service's virtual IP on this network (vip mode). */
  readonly vip?: string;
  /** Addresses on this network of the tasks that should receive traffic (running and healthy). */
  readonly backends: readonly string[];
  /** Extra DNS names (network aliases). */
  readonly aliases?: readonly string[];
}

/** What the executor needs to finish the container: where its resolver is. */
export interface AttachedEndpoint {
  readonly id: string;
  readonly ifName: string;
  readonly ip: string;
  readonly mac: string;
  readonly prefixLength: number;
  readonly gateway: string;
  /** Put this as the container's `nameserver` (with `options ndots:0`). */
  readonly nameserver: string;
}
