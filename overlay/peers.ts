// Remote endpoints as kernel entries in the sandbox, and the minimal change between two sets.
//   FDB        remote MAC → remote host's underlay address, on vxlan0 (`self permanent`)
//   neighbour  remote IP  → remote MAC, on vxlan0 (`nud permanent`); vxlan0 is created with `proxy`,
//              so it answers the containers' ARP requests from these entries (no flooding, no learning)

import { macFromIpv4, normalizeMac, parseIpv4 } from './addresses.js';
import type { PeerSpec } from './spec.js';

export interface Peer {
  readonly ip: string;
  readonly mac: string;
  readonly hostAddr: string;
}

export function normalizePeer(spec: PeerSpec): Peer {
  parseIpv4(spec.ip);
  parseIpv4(spec.hostAddr);
  return { ip: spec.ip, mac: spec.mac === undefined ? macFromIpv4(spec.ip) : normalizeMac(spec.mac), hostAddr: spec.hostAddr };
}

export interface MapDiff<K, V> {
  /** Entries to (re)write: new keys and keys whose value changed. */
  readonly upsert: ReadonlyArray<readonly [K, V]>;
  /** Entries to delete: keys no longer wanted (with the value they have now). */
  readonly remove: ReadonlyArray<readonly [K, V]>;
}

export function diffMaps<K, V>(current: ReadonlyMap<K, V>, wanted: ReadonlyMap<K, V>): MapDiff<K, V> {
  const upsert: Array<readonly [K, V]> = [];
  const remove: Array<readonly [K, V]> = [];
  for (const [k, v] of current) if (!wanted.has(k)) remove.push([k, v]);
  for (const [k, v] of wanted) if (current.get(k) !== v) upsert.push([k, v]);
  return { upsert, remove };
}

/** `bridge fdb show dev vxlan0` → MAC → dst of our static unicast entries. */
export function parseFdb(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f:]{17}) .*\bdst (\d+\.\d+\.\d+\.\d+)\b/.exec(line.trim());
    if (!m || line.includes(' master ') || m[1] === '00:00:00:00:00:00') continue;
    out.set(m[1]!, m[2]!);
  }
  return out;
}

/** `ip neigh show dev vxlan0` → IP → MAC of permanent entries. */
export function parseNeighbours(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d+\.\d+\.\d+) .*\blladdr ([0-9a-f:]{17}).*PERMANENT/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}
