// Rows of bench:vs-swarm and the side-by-side table: one line per workload and parameters, both
// systems' headline figure, and the ratio Shoal / Docker.
import { percentile, round, sortedAsc, median } from '../stats.js';

export type SystemName = 'shoal' | 'docker-swarm' | 'runc';
export type BenchName = 'task-start' | 'converge' | 'memory' | 'config-writes' | 'service-writes' | 'reads' | 'failover' | 'reschedule';

export interface Row {
  readonly bench: BenchName;
  readonly system: SystemName;
  readonly [key: string]: string | number | null;
}

/** Which figure of a bench is its headline, and whether lower is better. */
export const HEADLINE: Readonly<Record<BenchName, { readonly figure: string; readonly lowerIsBetter: boolean }>> = {
  'task-start': { figure: 'p50_ms', lowerIsBetter: true },
  converge: { figure: 'tasks_per_s', lowerIsBetter: false },
  memory: { figure: 'pss_mb', lowerIsBetter: true },
  'config-writes': { figure: 'ops_per_s', lowerIsBetter: false },
  'service-writes': { figure: 'ops_per_s', lowerIsBetter: false },
  reads: { figure: 'p50_ms', lowerIsBetter: true },
  failover: { figure: 'p50_ms', lowerIsBetter: true },
  reschedule: { figure: 'p50_ms', lowerIsBetter: true },
};

/** Figures (measured values) as opposed to parameters; everything else in a row is a parameter. */
const FIGURES = new Set(['seconds', 'ops_per_s', 'tasks_per_s', 'p50_ms', 'p99_ms', 'max_ms', 'rss_mb', 'pss_mb', 'pss_per_task_mb', 'daemon_pss_mb', 'tasks_p50_ms', 'tasks_max_ms', 'processes']);

/** The parameters of a row, as a stable key (bench first). */
export function paramsKey(row: Row): string {
  const params = Object.entries(row)
    .filter(([k]) => k !== 'system' && k !== 'bench' && !FIGURES.has(k))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${String(v)}`);
  return [row.bench, ...params].join(' ');
}

/** Figures shown beside the headline, when a row has them. */
const SECONDARY = ['p99_ms', 'max_ms', 'tasks_p50_ms', 'tasks_max_ms', 'daemon_pss_mb', 'pss_per_task_mb'] as const;

function secondary(r: Row | undefined): string {
  if (r === undefined) return '';
  return SECONDARY.filter((k) => typeof r[k] === 'number').map((k) => `${k}=${String(r[k])}`).join(' ');
}

export interface TableLine {
  readonly key: string;
  readonly figure: string;
  /** The other figures of each system's row (p99, max, …), as `name=value` words. */
  readonly shoalMore: string;
  readonly dockerMore: string;
  readonly shoal: number | undefined;
  readonly docker: number | undefined;
  /** shoal / docker, when both are there and docker's is not 0. */
  readonly ratio: number | undefined;
}

/** Pairs shoal and docker-swarm rows with the same parameters, in first-seen order. */
export function pairRows(rows: readonly Row[]): TableLine[] {
  const lines = new Map<string, { figure: string; shoal?: number; docker?: number; shoalRow?: Row; dockerRow?: Row }>();
  for (const r of rows) {
    if (r.system === 'runc') continue;
    const key = paramsKey(r);
    const figure = HEADLINE[r.bench].figure;
    const v = r[figure];
    const line = lines.get(key) ?? { figure };
    if (typeof v === 'number') {
      if (r.system === 'shoal') line.shoal = v;
      else line.docker = v;
    }
    if (r.system === 'shoal') line.shoalRow = r;
    else line.dockerRow = r;
    lines.set(key, line);
  }
  return [...lines.entries()].map(([key, l]) => ({
    key,
    figure: l.figure,
    shoal: l.shoal,
    docker: l.docker,
    shoalMore: secondary(l.shoalRow),
    dockerMore: secondary(l.dockerRow),
    ratio: l.shoal !== undefined && l.docker !== undefined && l.docker !== 0 ? round(l.shoal / l.docker, 2) : undefined,
  }));
}

function cell(v: number | undefined): string {
  return v === undefined ? '-' : String(v);
}

export function renderTable(rows: readonly Row[]): string {
  const lines = pairRows(rows);
  const head = ['workload', 'figure', 'shoal', 'docker-swarm', 'shoal/docker', 'shoal, more', 'docker, more'];
  const body = lines.map((l) => [l.key, l.figure, cell(l.shoal), cell(l.docker), cell(l.ratio), l.shoalMore, l.dockerMore]);
  const floors = rows.filter((r) => r.system === 'runc').map((r) => [paramsKey(r), HEADLINE[r.bench].figure, `runc floor: ${String(r[HEADLINE[r.bench].figure])}`, '', '', '', '']);
  const all = [head, ...body, ...floors];
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === 0 || i >= 5 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

/** p50/p99/max of latencies (ms), rounded for the rows. */
export function latencyFigures(ms: readonly number[]): { p50_ms: number; p99_ms: number; max_ms: number } {
  const s = sortedAsc(ms);
  return { p50_ms: round(median(ms), 1), p99_ms: round(percentile(s, 99), 1), max_ms: round(s[s.length - 1] ?? NaN, 1) };
}
