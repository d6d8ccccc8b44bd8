// The candidate nodes of one leaf of the spread tree, best first: fewest tasks of the service
// being decided, then fewest tasks overall, then the lower node number (ID order). Placing a task
// only makes its node worse, so after each placement the top sinks (`sinkTop`); a node that can
// no longer take the group's task is dropped (`pop`) — within a pass it never gets room back.

export class NodeHeap {
  private readonly items: Int32Array;
  private length: number;

  /** `serviceTasks` and `allTasks` are read live: the heap orders by their current values. */
  constructor(
    nodes: Int32Array,
    private readonly serviceTasks: Int32Array,
    private readonly allTasks: Int32Array,
  ) {
    this.items = nodes;
    this.length = nodes.length;
    for (let i = (this.length >> 1) - 1; i >= 0; i--) this.sink(i);
  }

  get size(): number {
    return this.length;
  }

  /** The best node; only valid while `size > 0`. */
  top(): number {
    return this.items[0]!;
  }

  pop(): void {
    this.length--;
    if (this.length > 0) {
      this.items[0] = this.items[this.length]!;
      this.sink(0);
    }
  }

  /** Restores order after the top node's counts grew. */
  sinkTop(): void {
    this.sink(0);
  }

  private less(a: number, b: number): boolean {
    const sa = this.serviceTasks[a]!;
    const sb = this.serviceTasks[b]!;
    if (sa !== sb) return sa < sb;
    const ta = this.allTasks[a]!;
    const tb = this.allTasks[b]!;
    if (ta !== tb) return ta < tb;
    return a < b;
  }

  private sink(from: number): void {
    const items = this.items;
    const n = this.length;
    let i = from;
    const node = items[i]!;
    while (true) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.less(items[right]!, items[left]!) ? right : left;
      if (!this.less(items[child]!, node)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = node;
  }
}
