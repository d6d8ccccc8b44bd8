// Names of everything the data plane creates, derived so that a restarted daemon (reconcile)
// can find them again by prefix: namespaces, links and iptables chains.
//
//   sandbox netns        shoal-<hostTag>-n<netid12>         (under /run/netns)
//   task netns           shoal-<hostTag>-t<taskid>          (worker/network: a task's container netns)
//   ingress sandbox      shoal-<hostTag>-i                  (worker/network: the routing mesh)
// The host tag is the executor's netns tag (the sanitized hostname), so that everything of one
// host starts with shoal-<hostTag>- (what `shoal lab down` sweeps); the n/t/i letter keeps the
// data plane's reconcile away from the executor's own shoal-<hostTag>-<10 hex> namespaces.
//   in the sandbox       br0 (bridge, gateway address), vxlan0, vs<hash11> (one veth end per endpoint)
//   host netns, briefly  shv<vni> — the vxlan before it is moved into the sandbox
//   host netns           shoal_gwbridge + sg<hash11> (one veth end per task with host-mode ports)
//   container netns      nat:    SHOAL-VIP-<net8>  (jumped from OUTPUT) → SHOAL-SVC-<net8>-<svc8>
//                        filter: SHOAL-REJ-<net8>  (jumped from OUTPUT)

import { createHash } from 'node:crypto';
import { OverlayError } from './errors.js';

export const SANDBOX_PREFIX = 'shoal-';
export const BRIDGE_NAME = 'br0';
export const VXLAN_NAME = 'vxlan0';
export const HOST_VXLAN_PREFIX = 'shv';
export const SANDBOX_VETH_PREFIX = 'vs';
export const CHAIN_PREFIX = 'SHOAL-';

function hex(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

const HOST_TAG = /^[A-Za-z0-9][A-Za-z0-9-]{0,23}$/;

export function checkHostTag(hostTag: string): void {
  if (!HOST_TAG.test(hostTag)) {
    throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `host tag ${JSON.stringify(hostTag)} must be 1-24 characters of [A-Za-z0-9-], not starting with -`);
  }
}

/** All sandboxes of one host start with this (several lab hosts share one /run/netns). */
export function sandboxPrefix(hostTag: string): string {
  return `${SANDBOX_PREFIX}${hostTag}-n`;
}

/** True for the part after sandboxPrefix of one of our sandboxes (a network tag: no '-'). */
export function isSandboxTail(tail: string): boolean {
  return /^[a-z0-9]{1,12}$/.test(tail);
}

/** The network namespace worker/network makes for a task's container. */
export function taskNetnsName(hostTag: string, taskId: string): string {
  return `${SANDBOX_PREFIX}${hostTag}-t${taskId.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 25) || hex(taskId, 25)}`;
}

export function taskNetnsPrefix(hostTag: string): string {
  return `${SANDBOX_PREFIX}${hostTag}-t`;
}

/** The routing mesh's sandbox of a host (Docker's ingress_sbox). */
export function ingressSandboxName(hostTag: string): string {
  return `${SANDBOX_PREFIX}${hostTag}-i`;
}

/** The short form of a network id used in names: its first 12 characters (swarm ids are 25 base-36 chars). */
export function networkTag(networkId: string): string {
  return networkId.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 12) || hex(networkId, 12);
}

export function sandboxName(hostTag: string, networkId: string): string {
  return `${sandboxPrefix(hostTag)}${networkTag(networkId)}`;
}

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export function hostVxlanName(vni: number): string {
  return `${HOST_VXLAN_PREFIX}${vni}`;
}

export function sandboxVethName(endpointId: string): string {
  return `${SANDBOX_VETH_PREFIX}${hex(endpointId, 11)}`;
}

/** Host end of a task's veth on the gateway bridge (host-mode published ports). */
export function gatewayVethName(endpointId: string): string {
  return `sg${hex(endpointId, 11)}`;
}

export function vipChain(networkId: string): string {
  return `${CHAIN_PREFIX}VIP-${hex(networkId, 8)}`;
}

export function rejectChain(networkId: string): string {
  return `${CHAIN_PREFIX}REJ-${hex(networkId, 8)}`;
}

export function serviceChain(networkId: string, serviceId: string): string {
  return `${CHAIN_PREFIX}SVC-${hex(networkId, 8)}-${hex(serviceId, 8)}`;
}

/** True when `chain` is one of the chains of `networkId` (VIP, REJ or a service chain). */
export function isNetworkChain(chain: string, networkId: string): boolean {
  const net = hex(networkId, 8);
  return chain === vipChain(networkId) || chain === rejectChain(networkId) || chain.startsWith(`${CHAIN_PREFIX}SVC-${net}-`);
}

/** Network hash part of one of our chain names, or undefined for a chain not ours. */
export function chainNetworkHash(chain: string): string | undefined {
  const m = /^SHOAL-(?:VIP|REJ|SVC)-([0-9a-f]{8})(?:-[0-9a-f]{8})?$/.exec(chain);
  return m?.[1];
}

export function networkHash(networkId: string): string {
  return hex(networkId, 8);
}
