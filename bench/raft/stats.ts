// Figures for the Raft benchmark: latency percentiles of one run, the median over repeated
// runs, and the table printed for people. Pure functions, unit-tested in stats.test.ts.

import { median, percentile, round } from '../stats.js';

export { median, percentile, round };
/** One measured run of the load client. */
export interface RunFigures {
  readonly total: number;
  readonly seconds: number;
  readonly ops_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly errors: number;
  /** CPU time the load client spent per put (user + system), when measured. */
  readonly client_cpu_us_per_op?: number;
  /** CPU time the three server processes spent per put (all members together), when measured. */
  readonly server_cpu_us_per_op?: number;
}

export type System = 'shoal' | 'etcd';

/** One output row, as `--json` prints it. */
export interface BenchRow extends RunFigures {
  readonly bench: 'raft';
  readonly system: System;
  readonly nodes: number;
  readonly concurrency: number;
  readonly payload_bytes: number;
  readonly runs: number;
  /** Which load client drove the system (shoal's framed TCP protocol; etcd3 npm client or bare grpc-js). */
  readonly client?: 'shoal-tcp' | 'etcd3' | 'grpc';
  /** Entries (etcd: committed proposals) per leader fsync during the measured runs. */
  readonly leader_entries_per_fsync?: number;
  readonly leader_fsync_ms?: number;
}


/** Summarizes one run from its per-operation latencies (ms) and wall time. */
export function summarize(latenciesMs: Float64Array, seconds: number, errors: number): RunFigures {
  const sorted = Float64Array.from(latenciesMs).sort();
  return {
    total: sorted.length,
    seconds: round(seconds, 3),
    ops_per_s: round(sorted.length / seconds, 1),
    p50_ms: round(percentile(sorted, 50), 3),
    p99_ms: round(percentile(sorted, 99), 3),
    errors,
  };
}

/** Collapses repeated runs of one configuration into one row: the median of each figure. */
export function medianRow(meta: Omit<BenchRow, keyof RunFigures | 'runs'>, runs: readonly RunFigures[]): BenchRow {
  if (runs.length === 0) throw new Error('medianRow: no runs');
  const m = (k: keyof RunFigures): number => median(runs.map((r) => r[k] ?? NaN));
  return {
    ...meta,
    total: m('total'),
    seconds: round(m('seconds'), 3),
    ops_per_s: round(m('ops_per_s'), 1),
    p50_ms: round(m('p50_ms'), 3),
    p99_ms: round(m('p99_ms'), 3),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    runs: runs.length,
    ...(runs.every((r) => r.client_cpu_us_per_op !== undefined) ? { client_cpu_us_per_op: m('client_cpu_us_per_op') } : {}),
    ...(runs.every((r) => r.server_cpu_us_per_op !== undefined) ? { server_cpu_us_per_op: m('server_cpu_us_per_op') } : {}),
  };
}


/**
 * The human table: one line per (concurrency, total) with both systems side by side and the
 * ratios shoal/etcd (throughput: higher is better for shoal; latency: lower is better).
 */
export function formatTable(rows: readonly BenchRow[]): string {
  const keys = [...new Set(rows.map((r) => `${r.concurrency}/${r.total}`))];
  const header = ['conc', 'total', 'shoal ops/s', 'etcd ops/s', 'ratio', 'shoal p50', 'etcd p50', 'shoal p99', 'etcd p99', 'p99 ratio', 'srv cpu/put shoal', 'etcd'];
  const lines: string[][] = [header];
  for (const key of keys) {
    const [c, t] = key.split('/').map(Number) as [number, number];
    const s = rows.find((r) => r.system === 'shoal' && r.concurrency === c && r.total === t);
    const e = rows.find((r) => r.system === 'etcd' && r.concurrency === c && r.total === t);
    lines.push([
      String(c),
      String(t),
      fmt(s?.ops_per_s, 0),
      fmt(e?.ops_per_s, 0),
      ratio(s?.ops_per_s, e?.ops_per_s),
      ms(s?.p50_ms),
      ms(e?.p50_ms),
      ms(s?.p99_ms),
      ms(e?.p99_ms),
      ratio(s?.p99_ms, e?.p99_ms),
      us(s?.server_cpu_us_per_op),
      us(e?.server_cpu_us_per_op),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines
    .map((l) => {
      // Right-aligned throughout (numbers line up; headers sit over their numbers).
      return l.map((cell, i) => cell.padStart(widths[i]!)).join('  ');
    })
    .join('\n');
}

function fmt(x: number | undefined, digits: number): string {
  return x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);
}

function ms(x: number | undefined): string {
  return x === undefined || Number.isNaN(x) ? '-' : `${x.toFixed(2)} ms`;
}

function us(x: number | undefined): string {
  return x === undefined || Number.isNaN(x) ? '-' : `${x.toFixed(0)} us`;
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !(b > 0)) return '-';
  return `${(a / b).toFixed(2)}x`;
}
