// Constraint filter: every `key==value` / `key!=value` of the placement holds on the node. The
// refusal names the first constraint that fails, so the user sees which one to fix.

import type { ClusterView } from '../cluster-view.js';
import { compileConstraint, type Constraint } from '../constraints.js';
import { FilterRank, type NodeFilter } from './filter.js';

export function constraintFilter(view: ClusterView, constraints: readonly Constraint[]): NodeFilter | undefined {
  if (constraints.length === 0) return undefined;
  const compiled = constraints.map((c) => ({ holds: compileConstraint(c), refusal: `constraint ${c.text} not met` }));
  return {
    rank: FilterRank.constraint,
    check(node) {
      const n = view.nodes[node]!;
      for (const c of compiled) if (!c.holds(n)) return c.refusal;
      return undefined;
    },
  };
}
