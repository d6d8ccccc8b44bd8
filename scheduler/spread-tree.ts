// The spread tree of placement preferences, as swarm builds it: the root splits the nodes by the
// value of the first preference's label, each branch by the next, and the leaves hold the
// candidate nodes (`LeafCandidates`). Tasks are split over the branches of a level so that their task
// counts (tasks of the service already under each branch) come out as even as possible —
// water-filling from the emptiest branch — and a branch that runs out of room hands its share to
// the others. Without preferences the tree is a single leaf.
//
// The shape depends only on the nodes' labels, so it is built once per pass for each list of
// preferences (`SpreadLayout`); each task group then only counts its service's tasks into it
// and fills the leaves it visits with its eligible nodes (`SpreadTree`).

import { LeafCandidates, type SelectionMarks } from './node-heap.js';

/** The tree's shape for one list of preferences. Branch 0 is the root; a child's number is above its parent's. */
export class SpreadLayout {
  readonly parent: Int32Array;
  /** Sub-branches sorted by label value; undefined on a leaf. */
  readonly children: readonly (Int32Array | undefined)[];
  /** The leaf each node falls in. */
  readonly leafOf: Int32Array;

  /** `levels[k][node]` is the node's value for the k-th preference ("" when it lacks the label). */
  constructor(nodeCount: number, levels: readonly (readonly string[])[]) {
    const parent: number[] = [-1];
    const childMaps: (Map<string, number> | undefined)[] = [undefined];
    const values: string[] = [''];
    this.leafOf = new Int32Array(nodeCount);
    for (let node = 0; node < nodeCount; node++) {
      let branch = 0;
      for (const level of levels) {
        let map = childMaps[branch];
        if (map === undefined) {
          map = new Map();
          childMaps[branch] = map;
        }
        const value = level[node]!;
        let next = map.get(value);
        if (next === undefined) {
          next = parent.length;
          parent.push(branch);
          childMaps.push(undefined);
          values.push(value);
          map.set(value, next);
        }
        branch = next;
      }
      this.leafOf[node] = branch;
    }
    this.parent = Int32Array.from(parent);
    this.children = childMaps.map((m) =>
      m === undefined ? undefined : Int32Array.from([...m.values()].sort((a, b) => (values[a]! < values[b]! ? -1 : values[a]! > values[b]! ? 1 : 0))),
    );
  }

  get size(): number {
    return this.parent.length;
  }

  /** Groups nodes (in node order) by the leaf they fall in. */
  bucket(nodes: Int32Array): readonly (Int32Array | undefined)[] {
    const lists: (number[] | undefined)[] = new Array<number[] | undefined>(this.size);
    for (let i = 0; i < nodes.length; i++) {
      const leaf = this.leafOf[nodes[i]!]!;
      (lists[leaf] ??= []).push(nodes[i]!);
    }
    return Array.from(lists, (l) => (l === undefined ? undefined : Int32Array.from(l)));
  }
}

/** One task group's view of a layout: task counts per branch, which branches are full, leaf candidates. */
export class SpreadTree {
  /** Tasks of the service under each branch, on every node (eligible or not), as swarm counts. */
  readonly tasks: Int32Array;
  /** 1 when no node under the branch can take another task of the group. */
  readonly full: Uint8Array;
  private readonly leaves: (LeafCandidates | undefined)[];

  /**
   * `candidates[leaf]` are the leaf's eligible nodes (shared, never modified); `serviceNodes` the
   * nodes where `serviceTasks` is non-zero.
   */
  constructor(
    readonly layout: SpreadLayout,
    private readonly candidates: readonly (Int32Array | undefined)[],
    serviceNodes: readonly number[],
    private readonly serviceTasks: Int32Array,
    private readonly allTasks: Int32Array,
    private readonly selection: SelectionMarks,
  ) {
    const size = layout.size;
    this.tasks = new Int32Array(size);
    this.full = new Uint8Array(size);
    this.leaves = new Array<LeafCandidates | undefined>(size);
    for (const node of serviceNodes) {
      const count = serviceTasks[node]!;
      for (let b = layout.leafOf[node]!; b >= 0; b = layout.parent[b]!) this.tasks[b] += count;
    }
    // Children are numbered above their parents: one backward sweep settles fullness bottom-up.
    for (let b = size - 1; b >= 0; b--) {
      const children = layout.children[b];
      if (children === undefined) this.full[b] = candidates[b] === undefined ? 1 : 0;
      else this.full[b] = children.every((c) => this.full[c] === 1) ? 1 : 0;
    }
  }

  /** The candidates of a leaf, set up on first use; `want` is how many tasks the leaf is asked for. */
  leaf(leaf: number, want: number): LeafCandidates {
    let candidates = this.leaves[leaf];
    if (candidates === undefined) {
      candidates = new LeafCandidates(this.candidates[leaf] ?? new Int32Array(0), this.serviceTasks, this.allTasks, this.selection, want);
      this.leaves[leaf] = candidates;
    }
    return candidates;
  }
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
