// Max-replicas filter: the node runs fewer than `Placement.MaxReplicas` tasks of the service.
// Reads the view's scratch counts, so the service must be in focus (`ClusterView.focusService`).

import type { ClusterView } from '../cluster-view.js';
import { FilterRank, type NodeFilter } from './filter.js';

export function maxReplicasFilter(view: ClusterView, maxReplicas: number | undefined): NodeFilter | undefined {
  if (maxReplicas === undefined || maxReplicas <= 0) return undefined;
  const counts = view.serviceScratch;
  const refusal = `max replicas per node (${maxReplicas}) reached`;
  return { rank: FilterRank.maxReplicas, check: (node) => (counts[node]! < maxReplicas ? undefined : refusal) };
}
