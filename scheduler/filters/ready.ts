// Ready filter: the node is up (status ready) and takes new tasks (availability active).

import type { ClusterView } from '../cluster-view.js';
import { FilterRank, type NodeFilter } from './filter.js';

export function readyFilter(view: ClusterView): NodeFilter {
  const refusals = view.readyRefusal;
  return { rank: FilterRank.ready, check: (node) => refusals[node] };
}
