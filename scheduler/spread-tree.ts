// The spread tree of one task group, as swarm builds it for placement preferences: the root
// splits the nodes by the value of the first preference's label, each branch by the next, and
// the leaves hold the candidate nodes in a heap. Tasks are split over the branches of a level so
// that their task counts (tasks of the service already under each branch) come out as even as
// possible — water-filling from the emptiest branch — and a branch that runs out of room hands
// its share to the others. Without preferences the tree is a single leaf.

import { NodeHeap } from './node-heap.js';

export interface Branch {
  /** The label value this branch covers ("" for nodes without the label). */
  readonly value: string;
  /** Tasks of the service under this branch, on every node (eligible or not), as swarm counts. */
  tasks: number;
  /** Sub-branches sorted by value; undefined on a leaf. */
  readonly children: Branch[] | undefined;
  /** Candidate nodes; only on a leaf. */
  readonly heap: NodeHeap | undefined;
  /** No node under this branch can take another task of the group. */
  full: boolean;
}

interface BuildBranch {
  value: string;
  tasks: number;
  children: Map<string, BuildBranch> | undefined;
  nodes: number[];
}

/**
 * Builds the tree over all `nodeCount` nodes. `levels[k][node]` is the node's value for the k-th
 * preference; `eligible` lists the nodes that passed the group's static filters.
 */
export function buildSpreadTree(
  nodeCount: number,
  levels: readonly (readonly string[])[],
  eligible: Int32Array,
  serviceTasks: Int32Array,
  allTasks: Int32Array,
): Branch {
  if (levels.length === 0) {
    let tasks = 0;
    for (let i = 0; i < eligible.length; i++) tasks += serviceTasks[eligible[i]!]!;
    return { value: '', tasks, children: undefined, heap: new NodeHeap(eligible.slice(), serviceTasks, allTasks), full: eligible.length === 0 };
  }
  const isEligible = new Uint8Array(nodeCount);
  for (let i = 0; i < eligible.length; i++) isEligible[eligible[i]!] = 1;
  const root: BuildBranch = { value: '', tasks: 0, children: undefined, nodes: [] };
  for (let node = 0; node < nodeCount; node++) {
    const count = serviceTasks[node]!;
    let branch = root;
    for (const values of levels) {
      branch.tasks += count;
      branch.children ??= new Map();
      const value = values[node]!;
      let next = branch.children.get(value);
      if (next === undefined) {
        next = { value, tasks: 0, children: undefined, nodes: [] };
        branch.children.set(value, next);
      }
      branch = next;
    }
    branch.tasks += count;
    if (isEligible[node] === 1) branch.nodes.push(node);
  }
  return freeze(root, serviceTasks, allTasks);
}

function freeze(b: BuildBranch, serviceTasks: Int32Array, allTasks: Int32Array): Branch {
  if (b.children === undefined) {
    return {
      value: b.value,
      tasks: b.tasks,
      children: undefined,
      heap: new NodeHeap(Int32Array.from(b.nodes), serviceTasks, allTasks),
      full: b.nodes.length === 0,
    };
  }
  const children = [...b.children.values()]
    .sort((x, y) => (x.value < y.value ? -1 : x.value > y.value ? 1 : 0))
    .map((c) => freeze(c, serviceTasks, allTasks));
  return { value: b.value, tasks: b.tasks, children, heap: undefined, full: children.every((c) => c.full) };
}

/**
 * Splits `n` new tasks over branches holding `counts` tasks so the totals are as even as possible:
 * the emptiest branches are raised to a common level first; the remainder goes one each to the
 * first branches in (count, position) order. Returns the share of each branch; the shares sum to n.
 */
export function waterFill(counts: readonly number[], n: number): number[] {
  const order = counts.map((_, i) => i).sort((a, b) => counts[a]! - counts[b]! || a - b);
  let raised = 0;
  let level = 0;
  let sum = 0;
  let raisedSum = 0;
  for (let k = 1; k <= order.length; k++) {
    sum += counts[order[k - 1]!]!;
    const candidate = Math.floor((sum + n) / k);
    if (candidate < counts[order[k - 1]!]!) break;
    raised = k;
    level = candidate;
    raisedSum = sum;
  }
  const shares = new Array<number>(counts.length).fill(0);
  let remainder = raisedSum + n - raised * level;
  for (let k = 0; k < raised; k++) {
    const i = order[k]!;
    shares[i] = level - counts[i]! + (remainder > 0 ? 1 : 0);
    if (remainder > 0) remainder--;
  }
  return shares;
}
