// Names and addresses of a lab's parts, all derived from the lab name so that `lab down` can find
// them even without a state file. Several labs coexist: each has its own bridge, veths, chain and
// /24 in 10.231.0.0/16.
import { createHash } from 'node:crypto';
import { CliError } from '../errors.js';

export const LAB_NAME_RE = /^[a-z0-9][a-z0-9-]{0,23}$/;
export const MAX_HOSTS_PER_ROLE = 20;
/** Inside each host namespace: the chain holding `lab partition`'s DROP rules. */
export const PARTITION_CHAIN = 'SHOAL-PARTITION';
export const SUBNET_BASE = '10.231';
export const REGISTRY_PORT = 5000;

export type Role = 'manager' | 'worker';

export interface HostPlan {
  /** `NAME-m1`: the host's name, its network namespace, and its daemon's hostname. */
  readonly name: string;
  /** `m1`: the host's short name within the lab. */
  readonly short: string;
  readonly role: Role;
  readonly index: number;
}

export function checkLabName(name: string): void {
  if (!LAB_NAME_RE.test(name)) {
    throw new CliError('ERR_USAGE', `invalid lab name "${name}": use 1-24 lowercase letters, digits and dashes, starting with a letter or digit`);
  }
}

/** 6 hex digits identifying the lab in interface and chain names (which are short in Linux). */
export function labId(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 6);
}

export function bridgeName(name: string): string {
  return `shlb-${labId(name)}`;
}

/** Host-side veth of a lab host (at most 15 characters: `shlv-xxxxxx-m20`). */
export function vethName(name: string, short: string): string {
  return `shlv-${labId(name)}-${short}`;
}

export function vethPrefix(name: string): string {
  return `shlv-${labId(name)}-`;
}

/** The host's FORWARD chain that lets the lab bridge's traffic through whatever the policy is. */
export function forwardChain(name: string): string {
  return `SHOAL-LAB-${labId(name)}`;
}

export function planHosts(name: string, managers: number, workers: number): HostPlan[] {
  for (const [what, n] of [['managers', managers], ['workers', workers]] as const) {
    if (!Number.isInteger(n) || n < 0 || n > MAX_HOSTS_PER_ROLE) throw new CliError('ERR_USAGE', `--${what} must be a whole number from 0 to ${MAX_HOSTS_PER_ROLE}, got ${n}`);
  }
  if (managers + workers === 0) throw new CliError('ERR_USAGE', 'a lab needs at least one host (--managers or --workers)');
  const hosts: HostPlan[] = [];
  for (let i = 1; i <= managers; i++) hosts.push({ name: `${name}-m${i}`, short: `m${i}`, role: 'manager', index: i });
  for (let i = 1; i <= workers; i++) hosts.push({ name: `${name}-w${i}`, short: `w${i}`, role: 'worker', index: i });
  return hosts;
}

/** True when `netns` has the shape of a host name of lab `name` (used to sweep after a crash). */
export function isLabHostName(name: string, netns: string): boolean {
  if (!netns.startsWith(`${name}-`)) return false;
  return /^[mw]\d{1,2}$/.test(netns.slice(name.length + 1));
}

/** Third octet tried first for a lab's /24: spread by name so parallel labs rarely probe the same. */
export function preferredSubnetIndex(name: string): number {
  return parseInt(createHash('sha256').update(`subnet:${name}`).digest('hex').slice(0, 8), 16) % 256;
}

export function subnetOf(index: number): string {
  return `${SUBNET_BASE}.${index}.0/24`;
}

export function gatewayOf(index: number): string {
  return `${SUBNET_BASE}.${index}.1`;
}

/** Managers at .11…, workers at .101… */
export function hostAddress(index: number, host: Pick<HostPlan, 'role' | 'index'>): string {
  return `${SUBNET_BASE}.${index}.${host.role === 'manager' ? 10 + host.index : 100 + host.index}`;
}

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return (((parts[0] as number) << 24) | ((parts[1] as number) << 16) | ((parts[2] as number) << 8) | (parts[3] as number)) >>> 0;
}

/** [first, last] addresses of a CIDR (a bare address is a /32). */
export function cidrRange(cidr: string): [number, number] {
  const [ip, bitsText] = cidr.split('/');
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const base = ipToInt(ip as string);
  const size = bits === 0 ? 2 ** 32 : 2 ** (32 - bits);
  const first = bits === 0 ? 0 : (base & ~(size - 1)) >>> 0;
  return [first, first + size - 1];
}

export function cidrsOverlap(a: string, b: string): boolean {
  const [a0, a1] = cidrRange(a);
  const [b0, b1] = cidrRange(b);
  return a0 <= b1 && b0 <= a1;
}

/** Resolves `m1` or `NAME-m1` to the host of the lab; a clear error otherwise. */
export function resolveHostName<T extends { readonly name: string; readonly short: string }>(labName: string, hosts: readonly T[], arg: string): T {
  const found = hosts.find((h) => h.name === arg || h.short === arg);
  if (found === undefined) {
    throw new CliError('ERR_USAGE', `no host "${arg}" in lab "${labName}" (hosts: ${hosts.map((h) => h.name).join(', ')})`);
  }
  return found;
}
