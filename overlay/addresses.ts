// IPv4 helpers: the overlay carries IPv4 only (as swarm's default pools do).

import { OverlayError } from './errors.js';

export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) throw invalid(text);
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) throw invalid(text);
    const n = Number(part);
    if (n > 255) throw invalid(text);
    value = value * 256 + n;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    return false;
  }
}

export interface Subnet {
  readonly network: number;
  readonly prefixLength: number;
}

export function parseSubnet(cidr: string): Subnet {
  const [addr, len, extra] = cidr.split('/');
  const prefixLength = Number(len);
  if (addr === undefined || extra !== undefined || !/^\d{1,2}$/.test(len ?? '') || prefixLength > 30 || prefixLength < 8) {
    throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `subnet ${JSON.stringify(cidr)} must be an IPv4 CIDR with a prefix length from 8 to 30`);
  }
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return { network: (parseIpv4(addr) & mask) >>> 0, prefixLength };
}

export function inSubnet(ip: string, subnet: Subnet): boolean {
  const mask = (0xffffffff << (32 - subnet.prefixLength)) >>> 0;
  return ((parseIpv4(ip) & mask) >>> 0) === subnet.network;
}

/** Docker's convention: 02:42 followed by the four bytes of the IPv4 address. */
export function macFromIpv4(ip: string): string {
  const v = parseIpv4(ip);
  const bytes = [0x02, 0x42, v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function normalizeMac(mac: string): string {
  const m = mac.toLowerCase();
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m)) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `MAC address ${JSON.stringify(mac)} is not xx:xx:xx:xx:xx:xx`);
  if ((parseInt(m.slice(0, 2), 16) & 1) === 1) throw new OverlayError('ERR_OVERLAY_INVALID_SPEC', `MAC address ${mac} is a multicast address`);
  return m;
}

function invalid(text: string): OverlayError {
  return new OverlayError('ERR_OVERLAY_INVALID_SPEC', `${JSON.stringify(text)} is not an IPv4 address`);
}
