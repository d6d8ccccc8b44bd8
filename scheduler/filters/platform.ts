// Platform filter: the node's OS and architecture are among the image's platforms.

import type { ClusterView } from '../cluster-view.js';
import { formatPlatforms, platformSupported } from '../platform.js';
import type { Platform } from '../types.js';
import { FilterRank, type NodeFilter } from './filter.js';

export function platformFilter(view: ClusterView, platforms: readonly Platform[]): NodeFilter | undefined {
  if (platforms.length === 0) return undefined;
  const refusal = `image platform${platforms.length === 1 ? '' : 's'} ${formatPlatforms(platforms)} not supported`;
  return {
    rank: FilterRank.platform,
    check: (node) => (platformSupported(platforms, view.nodes[node]!.Description?.Platform) ? undefined : refusal),
  };
}
