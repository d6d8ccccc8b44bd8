// npm run bench:scheduler [-- --json] [-- --runs 3 --nodes 1000,10000 --tasks 100000 --services 100]
// Two scenarios per cluster size, each run `runs` times, median reported:
//   empty — place `tasks` tasks of `services` services on an empty cluster of `nodes` nodes in one pass;
//   busy  — the cluster already runs those tasks; place 10 more tasks per service (a steady-state pass).

import {
  nodeMatches,
  parseConstraints,
  platformSupported,
  schedule,
  type PendingTask,
  type PlacedTask,
  type SchedulerNode,
  type SchedulerResult,
} from '../../scheduler/index.js';
import { makeWorkload } from './workload.js';
import { median, round } from '../stats.js';

interface Row {
  readonly bench: 'scheduler';
  readonly system: 'shoal';
  readonly scenario: 'empty' | 'busy';
  readonly running_tasks: number;
  readonly nodes: number;
  readonly services: number;
  readonly tasks: number;
  readonly placed: number;
  readonly runs: number;
  readonly seconds: number;
  /** CPU time of the process during the pass (user + system): steadier than wall time on a shared machine. */
  readonly cpu_seconds: number;
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

interface Measured {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly placed: number;
  readonly heapMb: number;
  readonly rssMb: number;
}

function measure(nodes: readonly SchedulerNode[], placedTasks: readonly PlacedTask[], pendingTasks: readonly PendingTask[]): Measured {
  const seconds: number[] = [];
  const cpuSeconds: number[] = [];
  let placed = 0;
  let heapMb = 0;
  let rssMb = 0;
  for (let run = 0; run < runs; run++) {
    collectGarbage();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const result = schedule({ nodes, placedTasks, pendingTasks });
    seconds.push((performance.now() - started) / 1000);
    const cpu = process.cpuUsage(cpuBefore);
    cpuSeconds.push((cpu.user + cpu.system) / 1e6);
    const mem = process.memoryUsage();
    heapMb = Math.max(heapMb, mem.heapUsed / MB);
    rssMb = Math.max(rssMb, mem.rss / MB);
    placed = result.assignments.size;
  }
  return { seconds: median(seconds), cpuSeconds: median(cpuSeconds), placed, heapMb, rssMb };
}

const NEW_TASKS_PER_SERVICE = 10;

const rows: Row[] = [];
for (const nodes of nodeCounts) {
  const workload = makeWorkload(nodes, services, tasks);
  const empty = measure(workload.nodes, [], workload.pending);
  rows.push(row('empty', nodes, 0, workload.pending.length, empty));

  const first = schedule({ nodes: workload.nodes, placedTasks: [], pendingTasks: workload.pending });
  verify(workload.nodes, workload.pending, first);
  const running: PlacedTask[] = workload.pending
    .filter((t) => first.assignments.has(t.ID))
    .map((t) => ({ ID: t.ID, ServiceID: t.ServiceID, Spec: t.Spec, NodeID: first.assignments.get(t.ID)!, DesiredState: 'running' }));
  const more = workload.pending
    .filter((t) => t.ID.endsWith('-task-0'))
    .flatMap((t) => Array.from({ length: NEW_TASKS_PER_SERVICE }, (_, k) => ({ ...t, ID: `${t.ServiceID}-new-${k}` })));
  rows.push(row('busy', nodes, running.length, more.length, measure(workload.nodes, running, more)));
}

function row(scenario: 'empty' | 'busy', nodes: number, runningTasks: number, taskCount: number, m: Measured): Row {
  return {
    bench: 'scheduler',
    system: 'shoal',
    scenario,
    running_tasks: runningTasks,
    nodes,
    services,
    tasks: taskCount,
    placed: m.placed,
    runs,
    seconds: round(m.seconds, 4),
    cpu_seconds: round(m.cpuSeconds, 4),
    tasks_per_s: Math.round(taskCount / m.seconds),
    rss_mb: round(m.rssMb, 1),
    heap_mb: round(m.heapMb, 1),
  };
}

/** Refuses to report the speed of wrong answers: constraints, platforms, readiness and capacity hold. */
function verify(nodes: readonly SchedulerNode[], pending: readonly PendingTask[], result: SchedulerResult): void {
  const byId = new Map(nodes.map((n) => [n.ID, n]));
  const used = new Map<string, { cpu: number; mem: number }>();
  const parsed = new Map<readonly string[], ReturnType<typeof parseConstraints>>();
  for (const t of pending) {
    const at = result.assignments.get(t.ID);
    if (at === undefined) continue;
    const n = byId.get(at)!;
    const placement = t.Spec.Placement ?? {};
    const constraints = placement.Constraints ?? [];
    if (!parsed.has(constraints)) parsed.set(constraints, parseConstraints(constraints));
    const ok =
      n.Status.State === 'ready' &&
      n.Spec.Availability === 'active' &&
      nodeMatches(parsed.get(constraints)!, n) &&
      platformSupported(placement.Platforms ?? [], n.Description?.Platform);
    if (!ok) throw new Error(`bench: task ${t.ID} was placed on ${at}, which it may not run on`);
    const u = used.get(at) ?? { cpu: 0, mem: 0 };
    u.cpu += t.Spec.Resources?.Reservations?.NanoCPUs ?? 0;
    u.mem += t.Spec.Resources?.Reservations?.MemoryBytes ?? 0;
    used.set(at, u);
  }
  for (const [id, u] of used) {
    const cap = byId.get(id)!.Description?.Resources;
    if (u.cpu > (cap?.NanoCPUs ?? 0) || u.mem > (cap?.MemoryBytes ?? 0)) throw new Error(`bench: node ${id} is over its resources`);
  }
}

if (json) {
  console.log(JSON.stringify(rows));
} else {
  const columns = ['scenario', 'running_tasks', 'nodes', 'services', 'tasks', 'placed', 'runs', 'seconds', 'cpu_seconds', 'tasks_per_s', 'rss_mb', 'heap_mb'] as const;
  const cells = [columns.map(String), ...rows.map((r) => columns.map((c) => String(r[c])))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  console.log('scheduler: one pass; empty = all tasks onto an empty cluster, busy = 10 new tasks per service onto the full cluster (median of runs)');
  for (const row of cells) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
}
