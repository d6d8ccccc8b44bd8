// The filter pipeline for one task group, and the tally of refusals that becomes the reason a
// task stays pending: each node is refused by the first filter that fails on it, each refusal
// phrase is counted, and the explanation lists them most frequent first.

import type { NodeFilter } from './filters/filter.js';

export class Refusals {
  private readonly counts = new Map<string, { count: number; rank: number }>();

  add(phrase: string, rank: number, times = 1): void {
    const entry = this.counts.get(phrase);
    if (entry === undefined) this.counts.set(phrase, { count: times, rank });
    else entry.count += times;
  }

  addAll(other: Refusals): void {
    for (const [phrase, { count, rank }] of other.counts) this.add(phrase, rank, count);
  }

  get total(): number {
    let sum = 0;
    for (const { count } of this.counts.values()) sum += count;
    return sum;
  }

  /** `insufficient memory on 3 nodes; constraint node.labels.zone==a not met on 2 nodes` */
  explain(): string {
    return [...this.counts]
      .sort(([pa, a], [pb, b]) => b.count - a.count || a.rank - b.rank || (pa < pb ? -1 : pa > pb ? 1 : 0))
      .map(([phrase, { count }]) => `${phrase} on ${count} node${count === 1 ? '' : 's'}`)
      .join('; ');
  }
}

/** Runs filters in order; returns the first refusal and its rank, or undefined when all pass. */
export function firstRefusal(filters: readonly NodeFilter[], node: number): { phrase: string; rank: number } | undefined {
  for (const f of filters) {
    const phrase = f.check(node);
    if (phrase !== undefined) return { phrase, rank: f.rank };
  }
  return undefined;
}

/** The reason shown on a task that stays pending. */
export function noSuitableNode(refusals: Refusals, nodeCount: number): string {
  if (nodeCount === 0) return 'no suitable node (no nodes in the cluster)';
  const explanation = refusals.explain();
  return explanation === '' ? 'no suitable node' : `no suitable node (${explanation})`;
}
