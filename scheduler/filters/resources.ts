// Resources filter: the node has the task's reserved NanoCPUs, MemoryBytes and generic resource
// units left after the reservations of the tasks it holds (including this pass's decisions).

import type { ClusterView, Demand } from '../cluster-view.js';
import { FilterRank, type NodeFilter } from './filter.js';

export function resourcesFilter(view: ClusterView, demand: Demand): NodeFilter | undefined {
  const { nanoCpus, memoryBytes } = demand;
  const generic = [...demand.generic].map(([kind, units]) => ({
    available: view.genericAvailable(kind),
    units,
    refusal: `insufficient generic resource ${kind}`,
  }));
  if (nanoCpus <= 0 && memoryBytes <= 0 && generic.length === 0) return undefined;
  const cpus = view.nanoCpus;
  const memory = view.memoryBytes;
  return {
    rank: FilterRank.resources,
    check(node) {
      if (memory[node]! < memoryBytes) return 'insufficient memory';
      if (cpus[node]! < nanoCpus) return 'insufficient CPU';
      for (const g of generic) if (g.available[node]! < g.units) return g.refusal;
      return undefined;
    },
  };
}
