// A filter decides whether one node can take one task of the group being decided, and when it
// cannot, says why in a phrase a person can act on ("insufficient memory"). The pipeline counts
// those phrases over the nodes and reports "insufficient memory on 3 nodes".

export interface NodeFilter {
  /** Order in the pipeline; refusals with equal counts are listed in this order. */
  readonly rank: number;
  /** The refusal phrase for node number `node`, or undefined when the node passes. */
  check(node: number): string | undefined;
}

/** Pipeline order. Static filters (what the node is) come before dynamic ones (what it has left). */
export const FilterRank = {
  ready: 0,
  constraint: 1,
  platform: 2,
  maxReplicas: 3,
  hostPorts: 4,
  resources: 5,
} as const;
