// Host-ports filter: each host-mode published port of the task is free on the node.

import type { ClusterView } from '../cluster-view.js';
import { FilterRank, type NodeFilter } from './filter.js';

export function hostPortsFilter(view: ClusterView, hostPorts: readonly string[]): NodeFilter | undefined {
  if (hostPorts.length === 0) return undefined;
  const ports = hostPorts.map((port) => ({ inUse: view.portUse(port), refusal: `host-mode port ${port} in use` }));
  return {
    rank: FilterRank.hostPorts,
    check(node) {
      for (const p of ports) if (p.inUse[node] === 1) return p.refusal;
      return undefined;
    },
  };
}
