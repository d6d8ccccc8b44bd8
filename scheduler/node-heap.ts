// The candidate nodes of one leaf of the spread tree, best first: fewest tasks of the service
// being decided, then fewest tasks overall, then the lower node number (ID order). Placing a task
// only makes its node worse, so after each placement the top sinks (`placedOnBest`); a node that
// can no longer take the group's task is dropped (`dropBest`) — within a pass it never gets room back.
//
// A group of 10 tasks needs about 10 nodes, not all 10,000: `LeafCandidates` orders only the best
// few (a bounded selection in one scan) and selects more, twice as many each time, only when the
// ordered ones run out or become worse than the worst one selected, which every unselected node
// is known to be behind. Unselected nodes take no tasks, so their place in the order is fixed.

/** True when node `a` comes before node `b`: fewer service tasks, then fewer tasks, then lower number. */
function before(a: number, b: number, serviceTasks: Int32Array, allTasks: Int32Array): boolean {
  const sa = serviceTasks[a]!;
  const sb = serviceTasks[b]!;
  if (sa !== sb) return sa < sb;
  const ta = allTasks[a]!;
  const tb = allTasks[b]!;
  if (ta !== tb) return ta < tb;
  return a < b;
}

/** Stamps marking the nodes a `LeafCandidates` has selected; one array for a whole pass. */
export class SelectionMarks {
  readonly marks: Int32Array;
  private stamp = 0;

  constructor(nodeCount: number) {
    this.marks = new Int32Array(nodeCount);
  }

  next(): number {
    return ++this.stamp;
  }
}

/** A binary min-heap of node numbers, ordered by `before` on the live counts. */
class NodeHeap {
  private items: Int32Array;
  private length = 0;

  constructor(
    capacity: number,
    private readonly serviceTasks: Int32Array,
    private readonly allTasks: Int32Array,
  ) {
    this.items = new Int32Array(Math.max(capacity, 1));
  }

  get size(): number {
    return this.length;
  }

  top(): number {
    return this.items[0]!;
  }

  /** Adds nodes, then restores heap order over everything. */
  addAll(nodes: Int32Array): void {
    if (this.length + nodes.length > this.items.length) {
      const grown = new Int32Array(Math.max(this.items.length * 2, this.length + nodes.length));
      grown.set(this.items.subarray(0, this.length));
      this.items = grown;
    }
    this.items.set(nodes, this.length);
    this.length += nodes.length;
    for (let i = (this.length >> 1) - 1; i >= 0; i--) this.sink(i);
  }

  pop(): void {
    this.length--;
    if (this.length > 0) {
      this.items[0] = this.items[this.length]!;
      this.sink(0);
    }
  }

  sink(from: number): void {
    const items = this.items;
    const n = this.length;
    const svc = this.serviceTasks;
    const all = this.allTasks;
    let i = from;
    const node = items[i]!;
    while (true) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(items[right]!, items[left]!, svc, all) ? right : left;
      if (!before(items[child]!, node, svc, all)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = node;
  }
}

export class LeafCandidates {
  private readonly heap: NodeHeap;
  private readonly stamp: number;
  private unselected: number;
  private batch: number;
  // The key of the worst node of the last selection: every unselected node comes after it.
  private thresholdService = 0;
  private thresholdAll = 0;
  private thresholdNode = -1;

  /**
   * `candidates` (read, never modified) are the leaf's eligible nodes; `firstBatch` how many to
   * order at first (the tasks the leaf is asked for).
   */
  constructor(
    private readonly candidates: Int32Array,
    private readonly serviceTasks: Int32Array,
    private readonly allTasks: Int32Array,
    private readonly selection: SelectionMarks,
    firstBatch: number,
  ) {
    this.stamp = selection.next();
    this.unselected = candidates.length;
    this.batch = Math.max(firstBatch, 16);
    this.heap = new NodeHeap(Math.min(this.batch, candidates.length), serviceTasks, allTasks);
  }

  /** The best node, or -1 when none is left. */
  best(): number {
    // Each turn returns or selects at least one more node: at most candidates + 1 turns.
    while (true) {
      if (this.heap.size > 0) {
        const top = this.heap.top();
        if (this.unselected === 0 || this.notAfterThreshold(top)) return top;
      }
      if (this.unselected === 0) return -1;
      this.selectMore();
    }
  }

  /** The best node took a task: its counts grew. */
  placedOnBest(): void {
    this.heap.sink(0);
  }

  /** The best node cannot take the group's task; forget it. */
  dropBest(): void {
    this.heap.pop();
  }

  private notAfterThreshold(node: number): boolean {
    const s = this.serviceTasks[node]!;
    if (s !== this.thresholdService) return s < this.thresholdService;
    const t = this.allTasks[node]!;
    if (t !== this.thresholdAll) return t < this.thresholdAll;
    return node <= this.thresholdNode;
  }

  /** Selects the best `batch` unselected candidates in one scan (a bounded max-heap), then doubles `batch`. */
  private selectMore(): void {
    const marks = this.selection.marks;
    const stamp = this.stamp;
    const svc = this.serviceTasks;
    const all = this.allTasks;
    const want = Math.min(this.batch, this.unselected);
    this.batch *= 2;
    const chosen = new Int32Array(want);
    let size = 0;
    for (let i = 0; i < this.candidates.length; i++) {
      const node = this.candidates[i]!;
      if (marks[node] === stamp) continue;
      if (size < want) {
        // Sift up in the max-heap (worst on top).
        let at = size++;
        while (at > 0) {
          const parent = (at - 1) >> 1;
          if (!before(chosen[parent]!, node, svc, all)) break;
          chosen[at] = chosen[parent]!;
          at = parent;
        }
        chosen[at] = node;
      } else if (before(node, chosen[0]!, svc, all)) {
        // Replace the worst and sift it down.
        let at = 0;
        while (true) {
          const left = 2 * at + 1;
          if (left >= size) break;
          const right = left + 1;
          const child = right < size && before(chosen[left]!, chosen[right]!, svc, all) ? right : left;
          if (!before(node, chosen[child]!, svc, all)) break;
          chosen[at] = chosen[child]!;
          at = child;
        }
        chosen[at] = node;
      }
    }
    for (let i = 0; i < size; i++) marks[chosen[i]!] = stamp;
    this.unselected -= size;
    const worst = chosen[0]!;
    this.thresholdService = svc[worst]!;
    this.thresholdAll = all[worst]!;
    this.thresholdNode = worst;
    this.heap.addAll(chosen);
  }
}
