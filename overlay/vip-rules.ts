// Service VIPs as iptables rules inside each container's network namespace (there is no IPVS here).
//
// Why the container's netns and its OUTPUT chain: a container reaches a VIP of its own subnet
// on-link, so the frame is bridged (L2) through the sandbox and never routed there — a sandbox
// PREROUTING rule would only see it through br_netfilter, and the container cannot even resolve
// the VIP's MAC (nobody owns the address). DNAT in the container's own OUTPUT happens before the
// packet leaves, conntrack un-NATs the replies in the same netns, and backends see the client's
// real address. See README.md for the measurements.
//
// Per network, per container netns:
//   nat    OUTPUT → SHOAL-VIP-<net>  -d VIP → SHOAL-SVC-<net>-<svc>  (random-probability DNAT per backend)
//   filter OUTPUT → SHOAL-REJ-<net>  -d VIP → REJECT (tcp-reset for TCP, icmp-port-unreachable otherwise)
// The REJECT rules are always present: filter runs after nat, so they only see packets that were
// not DNATed — a VIP with no backends. Changing backends is therefore one chain rewrite, applied
// with `iptables-restore --noflush` as one transaction (declaring a chain flushes it).

import { chainNetworkHash, networkHash, rejectChain, serviceChain, vipChain } from './names.js';
import type { ServiceSpec } from './spec.js';

/** Our chains found in one table of a netns, and which of them OUTPUT jumps to. */
export interface TableState {
  readonly chains: ReadonlySet<string>;
  readonly outputJumps: ReadonlySet<string>;
}

export interface NetnsRuleState {
  readonly nat: TableState;
  readonly filter: TableState;
}

/** Reads `iptables-save` output (all tables) for chains named SHOAL-… */
export function parseRuleState(saveOutput: string): NetnsRuleState {
  const tables = new Map<string, { chains: Set<string>; outputJumps: Set<string> }>();
  let current: { chains: Set<string>; outputJumps: Set<string> } | undefined;
  for (const line of saveOutput.split('\n')) {
    if (line.startsWith('*')) {
      current = { chains: new Set(), outputJumps: new Set() };
      tables.set(line.slice(1).trim(), current);
      continue;
    }
    if (current === undefined) continue;
    const chain = /^:(SHOAL-\S+)/.exec(line);
    if (chain) current.chains.add(chain[1]!);
    const jump = /^-A OUTPUT\b.*\s-j (SHOAL-\S+)/.exec(line);
    if (jump) current.outputJumps.add(jump[1]!);
  }
  const empty = { chains: new Set<string>(), outputJumps: new Set<string>() };
  return { nat: tables.get('nat') ?? empty, filter: tables.get('filter') ?? empty };
}

function ofNetwork(chains: ReadonlySet<string>, networkId: string): string[] {
  const hash = networkHash(networkId);
  return [...chains].filter((c) => chainNetworkHash(c) === hash).sort();
}

/** Probability for rule i of k so that each of k backends gets 1/k: 1/k, 1/(k-1), … , last unconditional. */
export function ruleProbability(index: number, count: number): string {
  return (1 / (count - index)).toFixed(10);
}

function vipServices(services: readonly ServiceSpec[]): ServiceSpec[] {
  return services.filter((s) => s.endpointMode === 'vip' && s.vip !== undefined).sort((a, b) => a.id.localeCompare(b.id));
}

/** iptables-restore input that makes the netns's rules of `networkId` exactly `services`. */
export function renderNetworkRules(networkId: string, services: readonly ServiceSpec[], state: NetnsRuleState): string {
  const vip = vipChain(networkId);
  const rej = rejectChain(networkId);
  const live = vipServices(services);
  const wantedServiceChains = new Set(live.filter((s) => s.backends.length > 0).map((s) => serviceChain(networkId, s.id)));
  const staleNat = ofNetwork(state.nat.chains, networkId).filter((c) => c !== vip && !wantedServiceChains.has(c));

  const nat: string[] = ['*nat', `:${vip} - [0:0]`];
  for (const chain of [...wantedServiceChains].sort()) nat.push(`:${chain} - [0:0]`);
  for (const chain of staleNat) nat.push(`:${chain} - [0:0]`);
  if (!state.nat.outputJumps.has(vip)) nat.push(`-I OUTPUT -j ${vip}`);
  for (const s of live) {
    if (s.backends.length === 0) continue;
    const chain = serviceChain(networkId, s.id);
    nat.push(`-A ${vip} -d ${s.vip}/32 -m comment --comment "${commentSafe(s.name)}" -j ${chain}`);
    const backends = [...new Set(s.backends)].sort();
    backends.forEach((ip, i) => {
      const statistic = i < backends.length - 1 ? `-m statistic --mode random --probability ${ruleProbability(i, backends.length)} ` : '';
      nat.push(`-A ${chain} ${statistic}-j DNAT --to-destination ${ip}`);
    });
  }
  for (const chain of staleNat) nat.push(`-X ${chain}`);
  nat.push('COMMIT');

  const filter: string[] = ['*filter', `:${rej} - [0:0]`];
  for (const chain of ofNetwork(state.filter.chains, networkId).filter((c) => c !== rej)) filter.push(`:${chain} - [0:0]`, `-X ${chain}`);
  if (!state.filter.outputJumps.has(rej)) filter.push(`-I OUTPUT -j ${rej}`);
  for (const s of live) {
    filter.push(`-A ${rej} -d ${s.vip}/32 -p tcp -j REJECT --reject-with tcp-reset`);
    filter.push(`-A ${rej} -d ${s.vip}/32 -j REJECT --reject-with icmp-port-unreachable`);
  }
  filter.push('COMMIT');
  return [...nat, ...filter, ''].join('\n');
}

/**
 * This network's part of a netns's rule state right after `renderNetworkRules(networkId, services, …)`
 * was applied: what the next render needs, so an update need not read `iptables-save` again.
 */
export function ruleStateAfter(networkId: string, services: readonly ServiceSpec[]): NetnsRuleState {
  const vip = vipChain(networkId);
  const rej = rejectChain(networkId);
  const serviceChains = vipServices(services)
    .filter((s) => s.backends.length > 0)
    .map((s) => serviceChain(networkId, s.id));
  return {
    nat: { chains: new Set([vip, ...serviceChains]), outputJumps: new Set([vip]) },
    filter: { chains: new Set([rej]), outputJumps: new Set([rej]) },
  };
}

/** iptables-restore input that removes every chain of `networkId` (and OUTPUT's jumps to them); undefined when none exist. */
export function renderNetworkRemoval(networkId: string, state: NetnsRuleState): string | undefined {
  return renderRemoval(state, (chain) => chainNetworkHash(chain) === networkHash(networkId));
}

/** iptables-restore input that removes every chain matching `select`; undefined when none match. */
export function renderRemoval(state: NetnsRuleState, select: (chain: string) => boolean): string | undefined {
  const lines: string[] = [];
  for (const [table, ts] of [['nat', state.nat], ['filter', state.filter]] as const) {
    const chains = [...ts.chains].filter(select).sort();
    const jumps = [...ts.outputJumps].filter(select).sort();
    if (chains.length === 0 && jumps.length === 0) continue;
    lines.push(`*${table}`);
    for (const jump of jumps) lines.push(`-D OUTPUT -j ${jump}`);
    for (const chain of chains) lines.push(`:${chain} - [0:0]`);
    for (const chain of chains) lines.push(`-X ${chain}`);
    lines.push('COMMIT');
  }
  return lines.length === 0 ? undefined : [...lines, ''].join('\n');
}

function commentSafe(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 200);
}
