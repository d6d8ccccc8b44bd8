// Which names a container may resolve, and to what: swarm's service discovery rules.
//   <service> (or an alias)  → its VIP on a network shared with the asker; in dnsrr mode the task addresses
//   tasks.<service>          → the addresses of its tasks
// Only services of the networks the asking container is attached to are visible. A name not
// visible is NXDOMAIN when it looks like a service name (one label, or tasks.<label>) — such a
// name must not leak to the host's resolvers — and is forwarded otherwise.

import type { ServiceSpec } from '../spec.js';
import { TYPE_A } from './message.js';

export interface NetworkRecords {
  readonly networkId: string;
  readonly services: readonly ServiceSpec[];
}

export type LookupResult =
  | { readonly kind: 'answer'; readonly addresses: readonly string[] }
  /** The name exists but has no record of the asked type (AAAA of a service): NOERROR, no answers. */
  | { readonly kind: 'nodata' }
  | { readonly kind: 'nxdomain' }
  | { readonly kind: 'forward' };

function matches(service: ServiceSpec, name: string): boolean {
  return service.name.toLowerCase() === name || (service.aliases ?? []).some((a) => a.toLowerCase() === name);
}

/**
 * `networks` are those of the asking container, the one the query arrived on first: a service on
 * several shared networks answers with its VIP on the first of them.
 */
export function lookupName(name: string, qtype: number, networks: readonly NetworkRecords[]): LookupResult {
  const wanted = name.toLowerCase().replace(/\.$/, '');
  const labels = wanted.split('.');
  const tasksQuery = labels.length === 2 && labels[0] === 'tasks';
  const serviceName = tasksQuery ? labels[1]! : wanted;

  for (const network of networks) {
    for (const service of network.services) {
      if (!matches(service, serviceName)) continue;
      if (qtype !== TYPE_A) return { kind: 'nodata' };
      const addresses = tasksQuery || service.endpointMode === 'dnsrr' || service.vip === undefined ? [...new Set(service.backends)] : [service.vip];
      return addresses.length === 0 ? { kind: 'nodata' } : { kind: 'answer', addresses };
    }
  }
  // A full-name lookup of `<service>` (no dot) that reaches here is someone else's service or none.
  if (labels.length === 1 || tasksQuery) return { kind: 'nxdomain' };
  return { kind: 'forward' };
}

/** Rotates the list so that successive answers start at different addresses (clients take the first). */
export function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return [];
  const k = ((by % items.length) + items.length) % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
