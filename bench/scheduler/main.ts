// npm run bench:scheduler [-- --json] [-- --runs 3 --nodes 1000,10000 --tasks 100000 --services 100]
// Places `tasks` tasks of `services` services on an empty cluster of `nodes` nodes in one pass,
// `runs` times per size, and reports the median run.

import { schedule } from '../../scheduler/index.js';
import { makeWorkload } from './workload.js';

interface Row {
  readonly bench: 'scheduler';
  readonly system: 'shoal';
  readonly nodes: number;
  readonly services: number;
  readonly tasks: number;
  readonly placed: number;
  readonly runs: number;
  readonly seconds: number;
  readonly tasks_per_s: number;
  readonly rss_mb: number;
  readonly heap_mb: number;
}

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1]! : fallback;
}

const json = process.argv.includes('--json');
const runs = Number(option('runs', '3'));
const nodeCounts = option('nodes', '1000,10000').split(',').map(Number);
const tasks = Number(option('tasks', '100000'));
const services = Number(option('services', '100'));
const MB = 2 ** 20;

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) gc();
}

const rows: Row[] = [];
for (const nodes of nodeCounts) {
  const workload = makeWorkload(nodes, services, tasks);
  const seconds: number[] = [];
  let placed = 0;
  let heapMb = 0;
  let rssMb = 0;
  for (let run = 0; run < runs; run++) {
    collectGarbage();
    const started = performance.now();
    const result = schedule({ nodes: workload.nodes, placedTasks: [], pendingTasks: workload.pending });
    seconds.push((performance.now() - started) / 1000);
    const mem = process.memoryUsage();
    heapMb = Math.max(heapMb, mem.heapUsed / MB);
    rssMb = Math.max(rssMb, mem.rss / MB);
    placed = result.assignments.size;
  }
  seconds.sort((a, b) => a - b);
  const median = seconds[Math.floor(seconds.length / 2)]!;
  rows.push({
    bench: 'scheduler',
    system: 'shoal',
    nodes,
    services,
    tasks: workload.pending.length,
    placed,
    runs,
    seconds: round(median, 3),
    tasks_per_s: Math.round(workload.pending.length / median),
    rss_mb: round(rssMb, 1),
    heap_mb: round(heapMb, 1),
  });
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

if (json) {
  console.log(JSON.stringify(rows));
} else {
  const columns = ['nodes', 'services', 'tasks', 'placed', 'runs', 'seconds', 'tasks_per_s', 'rss_mb', 'heap_mb'] as const;
  const cells = [columns.map(String), ...rows.map((r) => columns.map((c) => String(r[c])))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  console.log('scheduler: one pass placing all tasks on an empty cluster (median of runs)');
  for (const row of cells) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
}
