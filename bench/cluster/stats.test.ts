import { describe, expect, it } from 'vitest';

import { formatProfileSummary, shortFile, summarizeProfile, type CpuProfile } from './profile.js';
import { countProgress, formatTable, ProgressTally, medianRow, phases, ratePerSecond, summarizeRun, type BenchRow, type RunFigures } from './stats.js';

const task = (DesiredState: string, State: string): { DesiredState: string; Status: { State: string } } => ({ DesiredState, Status: { State } });

describe('countProgress', () => {
  it('counts wanted tasks, those placed (ASSIGNED…RUNNING) and those running; failures whatever they want', () => {
    const p = countProgress([
      task('running', 'new'),
      task('running', 'pending'),
      task('running', 'assigned'),
      task('running', 'starting'),
      task('running', 'running'),
      task('running', 'running'),
      task('shutdown', 'running'), // being stopped: not wanted
      task('shutdown', 'failed'),
      task('running', 'rejected'),
    ]);
    expect(p).toEqual({ wanted: 7, assigned: 4, running: 2, failed: 2 });
  });

  it('ProgressTally followed change by change ends where a recount does', () => {
    const tally = new ProgressTally();
    const a0 = task('running', 'pending');
    const b0 = task('running', 'pending');
    tally.add(a0);
    tally.add(b0);
    const a1 = task('running', 'running');
    tally.remove(a0);
    tally.add(a1);
    const b1 = task('shutdown', 'failed');
    tally.remove(b0);
    tally.add(b1);
    expect(tally.progress).toEqual(countProgress([a1, b1]));
    tally.remove(b1); // deleted
    expect(tally.progress).toEqual({ wanted: 1, assigned: 1, running: 1, failed: 0 });
  });
});

describe('phases', () => {
  const s = (ms: number, wanted: number, assigned: number, running: number) => ({ ms, wanted, assigned, running, failed: 0 });

  it('takes the first sample at which each phase covers the target', () => {
    const samples = [s(100, 0, 0, 0), s(200, 10, 3, 0), s(300, 10, 8, 2), s(400, 10, 5, 5), s(500, 10, 0, 10)];
    // assigned counts ASSIGNED…RUNNING, so 8 placed + 2 running = all 10 at 300 ms
    expect(phases(samples, 10)).toEqual({ created_ms: 200, assigned_ms: 300, running_ms: 500 });
  });

  it('is null for a phase never reached', () => {
    expect(phases([s(100, 10, 10, 4)], 10)).toEqual({ created_ms: 100, assigned_ms: 100, running_ms: null });
  });
});

describe('ratePerSecond', () => {
  it('is the counter delta over the time between the first and last sample', () => {
    expect(ratePerSecond([{ ms: 1000, value: 50 }, { ms: 1500, value: 80 }, { ms: 3000, value: 450 }])).toBe(200);
  });

  it('is NaN without a time span', () => {
    expect(ratePerSecond([{ ms: 0, value: 1 }])).toBeNaN();
    expect(ratePerSecond([{ ms: 5, value: 1 }, { ms: 5, value: 9 }])).toBeNaN();
  });
});

const input = {
  tasks: 1000,
  phases: { created_ms: 300, assigned_ms: 1000, running_ms: 4000 },
  heartbeatsConverging: [{ ms: 0, value: 0 }, { ms: 4000, value: 80 }],
  heartbeatsSteady: [{ ms: 0, value: 80 }, { ms: 5000, value: 180 }],
  executorsStartedMs: 2500,
  leaderCpuMs: 2000,
  followersCpuMs: 1000,
  workersCpuMs: 1000,
  rssMb: 180.04,
  followerRssMb: 130,
  workerProcRssMb: 150,
  statusCommits: 7,
  statusItems: 2100,
};

describe('summarizeRun', () => {
  it('derives time, throughput, rates, CPU per task and the CPU-bound projection', () => {
    const f = summarizeRun(input);
    expect(f.seconds).toBe(4);
    expect(f.tasks_per_s).toBe(250);
    expect(f.assign_seconds).toBe(1);
    expect(f.executors_started_seconds).toBe(2.5);
    expect(f.heartbeats_per_s_converging).toBe(20);
    expect(f.heartbeats_per_s_steady).toBe(20);
    expect(f.leader_cpu_pct).toBe(50);
    expect(f.leader_cpu_ms_per_task).toBe(2);
    expect(f.followers_cpu_ms_per_task).toBe(1);
    expect(f.workers_cpu_ms_per_task).toBe(1);
    // 4 s of CPU for 1000 tasks on 2 cores: 500 tasks/s at best
    expect(f.cpu_bound_tasks_per_s).toBe(500);
    expect(f.rss_mb).toBe(180);
    expect(f.status_items).toBe(2100);
  });

  it('refuses a run that never converged', () => {
    expect(() => summarizeRun({ ...input, phases: { ...input.phases, running_ms: null } })).toThrow(/never all ran/);
  });
});

describe('medianRow and formatTable', () => {
  const meta = { bench: 'cluster', system: 'shoal', nodes: 3, workers: 100, worker_procs: 2, tasks: 1000, heartbeat_period_ms: 5000, network: 'none', warmup_tasks: 0 } as const;

  it('takes the median of each figure over the runs, with the shared field names', () => {
    const runs: RunFigures[] = [summarizeRun(input), summarizeRun({ ...input, phases: { ...input.phases, running_ms: 2000 } }), summarizeRun({ ...input, phases: { ...input.phases, running_ms: 5000 } })];
    const row: BenchRow = medianRow(meta, runs);
    expect(row).toMatchObject({ bench: 'cluster', system: 'shoal', nodes: 3, workers: 100, tasks: 1000, runs: 3, seconds: 4, tasks_per_s: 250, rss_mb: 180 });
    expect(() => medianRow(meta, [])).toThrow();
  });

  it('prints a header and one aligned line per row', () => {
    const table = formatTable([medianRow(meta, [summarizeRun(input)])]);
    const lines = table.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('tasks/s');
    expect(lines[1]).toContain('250');
    expect(lines[1]).toContain('2/1/1');
    expect(lines[0]!.length).toBe(lines[1]!.length);
  });
});

describe('CPU profile summary', () => {
  const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 10_000,
    nodes: [
      { id: 1, callFrame: frame('(root)', '') },
      { id: 2, callFrame: frame('(idle)', '') },
      { id: 3, callFrame: frame('applyEntry', 'file:///work/main/manager/store/memory-store.ts', 9) },
      { id: 4, callFrame: frame('route', 'file:///work/main/manager/dispatcher/dispatcher.ts', 99) },
      { id: 5, callFrame: frame('write', 'file:///work/main/node_modules/@grpc/grpc-js/build/src/x.js', 4) },
    ],
    // 8 samples; each timeDelta is the time before its sample, so sample i lasts timeDeltas[i+1]
    samples: [2, 3, 3, 3, 4, 5, 2, 2],
    timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  };

  it('adds self time by function and by file, largest first, with the idle share', () => {
    const s = summarizeProfile(profile, 10);
    expect(s.totalMs).toBe(7);
    expect(s.busyPct).toBeCloseTo((100 * 5) / 7, 1);
    expect(s.files.map((f) => f.name)).toEqual(['manager/store/memory-store.ts', '(idle)', 'manager/dispatcher/dispatcher.ts', 'npm:@grpc/grpc-js']);
    expect(s.functions[0]).toEqual({ name: 'applyEntry manager/store/memory-store.ts:10', ms: 3, pct: 42.9 });
    expect(formatProfileSummary(s)).toContain('by function:');
  });

  it('falls back to hit counts when there are no sample times', () => {
    const s = summarizeProfile({ startTime: 0, endTime: 4000, nodes: [{ id: 1, callFrame: frame('f', 'node:fs'), hitCount: 3 }, { id: 2, callFrame: frame('(idle)', ''), hitCount: 1 }] }, 5);
    expect(s.totalMs).toBe(4);
    expect(s.functions[0]).toEqual({ name: 'f node:fs:1', ms: 3, pct: 75 });
  });

  it('names files by project folder or npm package', () => {
    expect(shortFile('file:///x/y/worker/agent/agent.ts')).toBe('worker/agent/agent.ts');
    expect(shortFile('file:///x/node_modules/pino/lib/a.js')).toBe('npm:pino');
    expect(shortFile('node:internal/http2/core')).toBe('node:internal/http2/core');
    expect(shortFile('')).toBe('(native)');
  });
});
