// IPv4 addresses as unsigned 32-bit numbers and CIDR blocks as [first, last] ranges: the
// arithmetic IPAM needs, nothing more. Swarm overlays (and this allocator) are IPv4 only.
import { AllocatorError } from './errors.js';

export interface Cidr {
  /** The network address (host bits zero). */
  readonly base: number;
  readonly prefixLength: number;
}

/** Dotted quad → number, or null. A character loop: the allocator parses every held address on each pass. */
export function parseAddr(text: string): number | null {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return null;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else {
      return null;
    }
  }
  if (dots !== 3 || digits === 0) return null;
  return value * 256 + part;
}

export function formatAddr(v: number): string {
  return [Math.floor(v / 2 ** 24) % 256, Math.floor(v / 2 ** 16) % 256, Math.floor(v / 256) % 256, v % 256].join('.');
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefixLength);
}

export function last(c: Cidr): number {
  return c.base + size(c) - 1;
}

/** `10.0.1.0/24` → Cidr; host bits set (`10.0.1.7/24`) are refused, as libnetwork refuses them. */
export function parseCidr(text: string, what: string): Cidr {
  const [addr, len, extra] = text.split('/');
  const base = addr === undefined ? null : parseAddr(addr);
  if (base === null || len === undefined || extra !== undefined || !/^\d{1,2}$/.test(len) || Number(len) > 32) {
    throw new AllocatorError('ERR_ALLOC_INVALID_SUBNET', `${what} ${JSON.stringify(text)} is not an IPv4 subnet in CIDR form (e.g. 10.0.9.0/24)`);
  }
  const c = { base, prefixLength: Number(len) };
  if (base % size(c) !== 0) {
    throw new AllocatorError('ERR_ALLOC_INVALID_SUBNET', `${what} ${text} has host bits set: did you mean ${formatCidr({ base: base - (base % size(c)), prefixLength: c.prefixLength })}?`);
  }
  return c;
}

export function formatCidr(c: Cidr): string {
  return `${formatAddr(c.base)}/${c.prefixLength}`;
}

export function contains(c: Cidr, addr: number): boolean {
  return addr >= c.base && addr <= last(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base <= last(b) && b.base <= last(a);
}

/** `10.0.1.5/24` (an address with its network's prefix, as tasks and VIPs carry it) → the address. */
export function addrOfInterface(text: string): number | null {
  const slash = text.indexOf('/');
  return parseAddr(slash < 0 ? text : text.slice(0, slash));
}
