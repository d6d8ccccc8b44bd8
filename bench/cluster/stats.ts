// Figures of bench:cluster: progress counts of a service's tasks, the time each phase was first
// complete (from progress samples), rates from counter deltas, the output rows and the table.
// Pure functions, unit-tested in stats.test.ts.
import { median, round } from '../stats.js';

export { median, round };

/** The part of a task the progress count reads. */
export interface TaskLike {
  readonly DesiredState: string;
  readonly Status: { readonly State: string };
}

/** How far the wanted (desired RUNNING) tasks of one service got. */
export interface Progress {
  /** Tasks that want to run. */
  readonly wanted: number;
  /** … that the scheduler placed (ASSIGNED or later, not terminal). */
  readonly assigned: number;
  /** … that their worker reported RUNNING. */
  readonly running: number;
  /** Tasks in a terminal state that is not a success (failed, rejected, orphaned…). */
  readonly failed: number;
}

const PLACED = new Set(['assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);
const BAD = new Set(['failed', 'rejected', 'orphaned', 'remove']);

export function countProgress(tasks: Iterable<TaskLike>): Progress {
  const tally = new ProgressTally();
  for (const t of tasks) tally.add(t);
  return tally.progress;
}

/**
 * `countProgress` kept up to date change by change (the bench's leader process follows a store
 * watch instead of re-reading every task at each poll): `add` a task as it is now, `remove` it as
 * it was.
 */
export class ProgressTally {
  private wanted = 0;
  private assigned = 0;
  private running = 0;
  private failed = 0;

  add(t: TaskLike, sign: 1 | -1 = 1): void {
    if (BAD.has(t.Status.State)) this.failed += sign;
    if (t.DesiredState !== 'running') return;
    this.wanted += sign;
    if (PLACED.has(t.Status.State)) this.assigned += sign;
    if (t.Status.State === 'running') this.running += sign;
  }

  remove(t: TaskLike): void {
    this.add(t, -1);
  }

  get progress(): Progress {
    return { wanted: this.wanted, assigned: this.assigned, running: this.running, failed: this.failed };
  }
}

/** One poll of the leader, `ms` after the service was created. */
export interface ProgressSample extends Progress {
  readonly ms: number;
}

/** When each phase was first complete for `target` tasks (ms after the create; null: never seen). */
export interface Phases {
  readonly created_ms: number | null;
  readonly assigned_ms: number | null;
  readonly running_ms: number | null;
}

export function phases(samples: readonly ProgressSample[], target: number): Phases {
  const first = (pred: (s: ProgressSample) => boolean): number | null => samples.find(pred)?.ms ?? null;
  return {
    created_ms: first((s) => s.wanted >= target),
    assigned_ms: first((s) => s.wanted >= target && s.assigned + s.running >= target),
    running_ms: first((s) => s.running >= target),
  };
}

/** Counter value at a time, for rates. */
export interface CounterSample {
  readonly ms: number;
  readonly value: number;
}

/** Average rate per second between the first and last sample (NaN when they span no time). */
export function ratePerSecond(samples: readonly CounterSample[]): number {
  if (samples.length < 2) return NaN;
  const a = samples[0]!;
  const b = samples[samples.length - 1]!;
  const dtMs = b.ms - a.ms;
  return dtMs <= 0 ? NaN : ((b.value - a.value) * 1000) / dtMs;
}

/** One measured run. */
export interface RunFigures {
  readonly seconds: number;
  readonly tasks_per_s: number;
  /** Seconds until every task was ASSIGNED (scheduler). */
  readonly assign_seconds: number;
  /** Seconds until the simulated executors had started every task (the store learns it later). */
  readonly executors_started_seconds: number;
  /** Heartbeats/s the leader answered while the service converged, and in steady state after. */
  readonly heartbeats_per_s_converging: number;
  readonly heartbeats_per_s_steady: number;
  /** Leader's resident set after convergence; the largest follower's; the largest worker process's. */
  readonly rss_mb: number;
  readonly follower_rss_mb: number;
  readonly worker_proc_rss_mb: number;
  /** Leader CPU (user + system) during convergence as a share of one core (low: it waited, or was starved). */
  readonly leader_cpu_pct: number;
  /** CPU time per task during convergence: the leader, both followers together, all worker processes. */
  readonly leader_cpu_ms_per_task: number;
  readonly followers_cpu_ms_per_task: number;
  readonly workers_cpu_ms_per_task: number;
  /**
   * Tasks/s if the CPU time all processes spent were the only limit on this machine's cores (a
   * projection from the CPU figures, for comparing runs on a machine shared with other work).
   */
  readonly cpu_bound_tasks_per_s: number;
  /** Dispatcher status batches (Raft entries) and items written during convergence. */
  readonly status_commits: number;
  readonly status_items: number;
}

export interface BenchRow extends RunFigures {
  readonly bench: 'cluster';
  readonly system: 'shoal';
  /** Managers (each its own process). */
  readonly nodes: number;
  /** Simulated worker nodes (real agents), and the processes they share. */
  readonly workers: number;
  readonly worker_procs: number;
  readonly tasks: number;
  readonly heartbeat_period_ms: number;
  /** The service's tasks attach to an overlay network (`--network`): the allocator gives each an address. */
  readonly network: 'none' | 'overlay';
  /** Replicas of the warm-up service converged, removed and reaped before the measured runs (`--warmup`; 0: none). */
  readonly warmup_tasks: number;
  readonly runs: number;
}

export function summarizeRun(input: {
  readonly tasks: number;
  readonly phases: Phases;
  readonly heartbeatsConverging: readonly CounterSample[];
  readonly heartbeatsSteady: readonly CounterSample[];
  readonly executorsStartedMs: number | null;
  readonly leaderCpuMs: number;
  readonly followersCpuMs: number;
  readonly workersCpuMs: number;
  readonly rssMb: number;
  readonly followerRssMb: number;
  readonly workerProcRssMb: number;
  readonly statusCommits: number;
  readonly statusItems: number;
  /** Cores the projection may use (default 2: this project's machine). */
  readonly cores?: number;
}): RunFigures {
  const runningMs = input.phases.running_ms;
  if (runningMs === null) throw new Error('summarizeRun: the tasks never all ran');
  const seconds = runningMs / 1000;
  const totalCpuMs = input.leaderCpuMs + input.followersCpuMs + input.workersCpuMs;
  return {
    seconds: round(seconds, 3),
    tasks_per_s: round(input.tasks / seconds, 1),
    assign_seconds: round((input.phases.assigned_ms ?? NaN) / 1000, 3),
    executors_started_seconds: round((input.executorsStartedMs ?? NaN) / 1000, 3),
    heartbeats_per_s_converging: round(ratePerSecond(input.heartbeatsConverging), 1),
    heartbeats_per_s_steady: round(ratePerSecond(input.heartbeatsSteady), 1),
    rss_mb: round(input.rssMb, 1),
    follower_rss_mb: round(input.followerRssMb, 1),
    worker_proc_rss_mb: round(input.workerProcRssMb, 1),
    leader_cpu_pct: round((100 * input.leaderCpuMs) / runningMs, 1),
    leader_cpu_ms_per_task: round(input.leaderCpuMs / input.tasks, 3),
    followers_cpu_ms_per_task: round(input.followersCpuMs / input.tasks, 3),
    workers_cpu_ms_per_task: round(input.workersCpuMs / input.tasks, 3),
    cpu_bound_tasks_per_s: totalCpuMs > 0 ? round((input.tasks * 1000 * (input.cores ?? 2)) / totalCpuMs, 1) : NaN,
    status_commits: input.statusCommits,
    status_items: input.statusItems,
  };
}

const FIGURES: readonly (keyof RunFigures)[] = [
  'seconds',
  'tasks_per_s',
  'assign_seconds',
  'executors_started_seconds',
  'heartbeats_per_s_converging',
  'heartbeats_per_s_steady',
  'rss_mb',
  'follower_rss_mb',
  'worker_proc_rss_mb',
  'leader_cpu_pct',
  'leader_cpu_ms_per_task',
  'followers_cpu_ms_per_task',
  'workers_cpu_ms_per_task',
  'cpu_bound_tasks_per_s',
  'status_commits',
  'status_items',
];

/** Repeated runs of one configuration → one row of medians. */
export function medianRow(meta: Omit<BenchRow, keyof RunFigures | 'runs'>, runs: readonly RunFigures[]): BenchRow {
  if (runs.length === 0) throw new Error('medianRow: no runs');
  const out: Record<string, number> = {};
  for (const k of FIGURES) out[k] = round(median(runs.map((r) => r[k])), 3);
  return { ...meta, ...(out as unknown as RunFigures), runs: runs.length };
}

export function formatTable(rows: readonly BenchRow[]): string {
  const cols: readonly [string, (r: BenchRow) => number][] = [
    ['workers', (r) => r.workers],
    ['tasks', (r) => r.tasks],
    ['procs', (r) => r.worker_procs],
    ['runs', (r) => r.runs],
    ['seconds', (r) => r.seconds],
    ['tasks/s', (r) => r.tasks_per_s],
    ['assigned s', (r) => r.assign_seconds],
    ['started s', (r) => r.executors_started_seconds],
    ['hb/s conv', (r) => r.heartbeats_per_s_converging],
    ['hb/s steady', (r) => r.heartbeats_per_s_steady],
    ['leader MB', (r) => r.rss_mb],
    ['follower MB', (r) => r.follower_rss_mb],
    ['worker proc MB', (r) => r.worker_proc_rss_mb],
    ['leader cpu %', (r) => r.leader_cpu_pct],
    ['cpu ms/task L/F/W', () => NaN],
    ['cpu-bound tasks/s', (r) => r.cpu_bound_tasks_per_s],
  ];
  const lines = [cols.map(([h]) => h)];
  for (const r of rows) {
    lines.push(
      cols.map(([h, f]) =>
        h === 'cpu ms/task L/F/W' ? `${r.leader_cpu_ms_per_task}/${r.followers_cpu_ms_per_task}/${r.workers_cpu_ms_per_task}` : f(r).toLocaleString('en-US'),
      ),
    );
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines.map((l) => l.map((c, i) => c.padStart(widths[i]!)).join('  ')).join('\n');
}
