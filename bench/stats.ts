// Summary statistics shared by every benchmark: one definition of a percentile, a median and
// rounding, so that figures from different benches mean the same thing.

/** Nearest-rank percentile (p in [0, 100]) of an ascending-sorted array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  if (p <= 0) return sorted[0]!;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** Ascending copy, for percentile(). */
export function sortedAsc(values: Iterable<number>): number[] {
  return [...values].sort((a, b) => a - b);
}

/** Median (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = sortedAsc(values);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Runs `one(0..count-1)` with `concurrency` callers in flight, each taking the next index:
 * the latency of every call (ms) and the wall-clock seconds of the whole batch.
 */
export async function timedConcurrent(count: number, concurrency: number, one: (i: number) => Promise<void>): Promise<{ ms: number[]; seconds: number }> {
  const ms: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= count) return;
        const s = performance.now();
        await one(i);
        ms.push(performance.now() - s);
      }
    }),
  );
  return { ms, seconds: (performance.now() - t0) / 1000 };
}
