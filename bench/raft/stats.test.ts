import { describe, expect, it } from 'vitest';
import { formatTable, median, medianRow, percentile, summarize, type BenchRow } from './stats.js';

describe('percentile (nearest rank)', () => {
  const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1); // 1..100

  it('picks the nearest-rank element', () => {
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([1, 2, 3], 50)).toBe(2);
  });

  it('is NaN for no samples', () => {
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('median', () => {
  it('takes the middle value, or the mean of the two middle values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('summarize', () => {
  it('computes throughput and percentiles from unsorted latencies', () => {
    const lat = Float64Array.from([5, 1, 4, 2, 3, 100, 6, 7, 8, 9]);
    const f = summarize(lat, 2, 1);
    expect(f).toEqual({ total: 10, seconds: 2, ops_per_s: 5, p50_ms: 5, p99_ms: 100, errors: 1 });
    expect(Array.from(lat)).toEqual([5, 1, 4, 2, 3, 100, 6, 7, 8, 9]); // input left alone
  });
});

describe('medianRow', () => {
  it('takes the median of each figure across runs and sums errors', () => {
    const row = medianRow({ bench: 'raft', system: 'shoal', nodes: 3, concurrency: 16, payload_bytes: 256 }, [
      { total: 100, seconds: 1, ops_per_s: 100, p50_ms: 1, p99_ms: 9, errors: 0 },
      { total: 100, seconds: 2, ops_per_s: 50, p50_ms: 3, p99_ms: 5, errors: 2 },
      { total: 100, seconds: 0.5, ops_per_s: 200, p50_ms: 2, p99_ms: 7, errors: 0 },
    ]);
    expect(row).toMatchObject({ total: 100, seconds: 1, ops_per_s: 100, p50_ms: 2, p99_ms: 7, errors: 2, runs: 3, system: 'shoal' });
    expect(row).not.toHaveProperty('client_cpu_us_per_op');
  });

  it('carries the client CPU per op when every run measured it', () => {
    const run = (cpu: number) => ({ total: 10, seconds: 1, ops_per_s: 10, p50_ms: 1, p99_ms: 1, errors: 0, client_cpu_us_per_op: cpu });
    const row = medianRow({ bench: 'raft', system: 'etcd', nodes: 3, concurrency: 1, payload_bytes: 256 }, [run(30), run(10), run(20)]);
    expect(row.client_cpu_us_per_op).toBe(20);
  });
});

describe('formatTable', () => {
  const row = (system: 'shoal' | 'etcd', concurrency: number, ops: number, p99: number): BenchRow => ({
    bench: 'raft', system, nodes: 3, concurrency, payload_bytes: 256, total: concurrency * 100,
    seconds: 1, ops_per_s: ops, p50_ms: 1, p99_ms: p99, errors: 0, runs: 1, server_cpu_us_per_op: ops / 10,
  });

  it('puts both systems of a workload on one line with the shoal/etcd ratios', () => {
    const out = formatTable([row('shoal', 1, 500, 4), row('shoal', 16, 3000, 10), row('etcd', 1, 1000, 2), row('etcd', 16, 2000, 20)]);
    const lines = out.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^conc\s+total\s+shoal ops\/s\s+etcd ops\/s\s+ratio/);
    expect(lines[1]!.trim().split(/\s{2,}/)).toEqual(['1', '100', '500', '1000', '0.50x', '1.00 ms', '1.00 ms', '4.00 ms', '2.00 ms', '2.00x', '50 us', '100 us']);
    expect(lines[2]!.trim().split(/\s{2,}/)).toEqual(['16', '1600', '3000', '2000', '1.50x', '1.00 ms', '1.00 ms', '10.00 ms', '20.00 ms', '0.50x', '300 us', '200 us']);
    // Columns line up: every line has the same length up to the last column.
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });

  it('shows a dash where a system has no figure', () => {
    const out = formatTable([row('shoal', 1, 500, 4)]);
    expect(out.split('\n')[1]).toMatch(/500\s+-\s+-/);
  });
});
