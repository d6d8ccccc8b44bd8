// bench:cluster — the whole control plane under load on one machine: 3 managers, each in its own
// process (real Raft, CA, gRPC + mutual TLS on loopback), and N simulated workers (the real Agent
// with its LevelDB and its own mTLS session to the leader's dispatcher, over a simulated executor
// that only pretends to run tasks), sharing a few worker processes. One replicated service of
// `tasks` replicas is created through the leader's Control API; the figure is the time until the
// leader's store shows every task RUNNING (reported by its worker), and tasks/s from it.
//
//   npm run bench:cluster                    # 10,000 replicas on 1,000 workers (4 worker processes)
//   npm run bench:cluster -- --quick         # 1,000 replicas on 100 workers
//   npm run bench:cluster -- --json          # one JSON array of rows
//   options: --workers N --tasks N --worker-procs N --runs N --heartbeat-ms N --steady-s N
//            --cpu-prof DIR (V8 CPU profiles of the leader, a follower and a worker process while the service converges, + summaries)
//            --network (the service attaches to an overlay network: the allocator's path)
//            --warmup N (before the measured runs: a service of N replicas converges and is removed and reaped;
//            default one per worker, 0 for a fresh cluster's first service)
import os from 'node:os';
import path from 'node:path';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Child, cleanup, installExitHandlers, makeTempDir } from './ipc.js';
import { shoaldV8Flags } from '../../cli/daemon/v8-flags.js';
import type { ManagerProcInfo, ManagerProcSpec, ManagerStats } from './manager-proc.js';
import { formatProfileSummary, summarizeProfile, type CpuProfile } from './profile.js';
import { formatTable, medianRow, phases, summarizeRun, type BenchRow, type CounterSample, type Progress, type ProgressSample, type RunFigures } from './stats.js';
import type { WorkerProcSpec, WorkerProcStats } from './worker-proc.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MANAGER_ENTRY = path.join(HERE, 'manager-proc.ts');
/** The managers run with the V8 flags shoald sets on itself (cli/daemon/v8-flags.ts), as in production; SHOAL_BENCH_NO_V8_FLAGS=1 runs them without (A/B). */
/** SHOAL_BENCH_MANAGER_V8_FLAGS adds flags to the managers' command line (A/B of V8 settings; shoald's own give way to them as in shoaldV8Flags). */
const EXTRA_MANAGER_FLAGS = (process.env['SHOAL_BENCH_MANAGER_V8_FLAGS'] ?? '').split(/\s+/).filter((f) => f !== '');
const MANAGER_EXEC_ARGV = [...(process.env['SHOAL_BENCH_NO_V8_FLAGS'] === '1' ? [] : shoaldV8Flags(EXTRA_MANAGER_FLAGS)), ...EXTRA_MANAGER_FLAGS];
const WORKER_ENTRY = path.join(HERE, 'worker-proc.ts');
/** A real worker's agent runs inside shoald, with the same V8 flags: the worker processes get them too (SHOAL_BENCH_NO_V8_FLAGS=1: none). */
/** SHOAL_BENCH_WORKER_V8_FLAGS adds flags to the worker processes' command line (profiling, A/B). */
const EXTRA_WORKER_FLAGS = (process.env['SHOAL_BENCH_WORKER_V8_FLAGS'] ?? '').split(/\s+/).filter((f) => f !== '');
const WORKER_EXEC_ARGV = [...(process.env['SHOAL_BENCH_NO_V8_FLAGS'] === '1' ? [] : shoaldV8Flags(EXTRA_WORKER_FLAGS)), ...EXTRA_WORKER_FLAGS];

const POLL_MS = 100;
const START_TIMEOUT_MS = 120_000;
const CONVERGE_TIMEOUT_MS = 600_000;

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    workers: { type: 'string' },
    tasks: { type: 'string' },
    'worker-procs': { type: 'string' },
    runs: { type: 'string', default: '1' },
    'heartbeat-ms': { type: 'string', default: '5000' },
    'steady-s': { type: 'string' },
    'cpu-prof': { type: 'string' },
    network: { type: 'boolean', default: false },
    warmup: { type: 'string' },
  },
});

const workers = Number(opts.workers ?? (opts.quick ? 100 : 1000));
const tasks = Number(opts.tasks ?? (opts.quick ? 1000 : 10_000));
const workerProcs = Math.max(1, Math.min(workers, Number(opts['worker-procs'] ?? 2)));
const runs = Math.max(1, Number(opts.runs));
const heartbeatMs = Number(opts['heartbeat-ms']);
const steadyS = Number(opts['steady-s'] ?? (opts.quick ? 5 : 10));
const profDir = opts['cpu-prof'];
/** The service attaches to an overlay network: every task gets an address from the allocator (NEW → PENDING). */
const withNetwork = opts.network === true;
/**
 * Replicas of a warm-up service that converges, is removed and is reaped before the measured runs.
 * Default: one per worker, so every process of the cluster has run the task path once — as in a
 * cluster that has run a service before. 0: none — the measured service is the first one the
 * fresh processes ever run, and V8 compiles their task path (TurboFan threads, cold inline
 * caches) during the measurement: ~30 % more CPU per task (bench/cluster/README.md, session 8).
 */
const warmupTasks = Math.max(0, Number(opts.warmup ?? workers));
const NETWORK_NAME = 'bench-net';

function say(msg: string): void {
  process.stderr.write(`bench:cluster: ${msg}\n`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every POLL_MS until it returns something other than undefined, at most `limitMs`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, limitMs: number): Promise<T> {
  const deadline = performance.now() + limitMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** How long the agents must have applied no assignment message for the cluster to count as settled. */
const SETTLED_QUIET_MS = 1_000;
const SETTLE_LIMIT_MS = 300_000;

/**
 * Waits until the joins' aftermath is over: every node that joined changed the ingress network's
 * view, which the dispatcher sends every node again (a view of 1,000 nodes is ~90 KB); on 2 cores
 * that traffic outlasts "all nodes ready" by 10–20 s at 1,000 workers. Measured from there, a run
 * would carry part of the join's cost (and vary with how much of it is left).
 */
async function settle(procs: readonly Child<unknown>[]): Promise<void> {
  const t0 = performance.now();
  const messages = async (): Promise<number> => (await Promise.all(procs.map((p) => p.request<WorkerProcStats>('stats')))).reduce((a, w) => a + w.agent.assignmentMessages, 0);
  const first = await messages();
  let last = first;
  let quietSince = performance.now();
  await until(
    'the agents to stop receiving assignment messages',
    async () => {
      const now = await messages();
      if (now !== last) {
        last = now;
        quietSince = performance.now();
      }
      return performance.now() - quietSince >= SETTLED_QUIET_MS ? true : undefined;
    },
    SETTLE_LIMIT_MS,
  );
  say(`settled: the agents applied ${last - first} more assignment messages (the joins' ingress network views) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function main(): Promise<void> {
  installExitHandlers();
  const base = await makeTempDir('shoal-bench-cluster-');
  // Logs live apart from the data: removed after a good run, kept (and named) after a failure.
  const logDir = await mkdtemp(path.join(os.tmpdir(), 'shoal-bench-cluster-logs-'));
  let ok = false;
  const managers: Child<ManagerProcInfo>[] = [];
  const procs: Child[] = [];
  try {
    say(`3 managers, ${workers} workers in ${workerProcs} processes, ${tasks} tasks, heartbeat ${heartbeatMs} ms (logs: ${logDir})`);
    const mspec = (i: number, extra: Partial<ManagerProcSpec> = {}): ManagerProcSpec =>
      ({ mode: 'init', dataRoot: path.join(base, `m${i}`), heartbeatPeriodMs: heartbeatMs, ...extra }) as ManagerProcSpec;
    const first = await Child.start<ManagerProcInfo>('manager-1', MANAGER_ENTRY, mspec(1), path.join(logDir, 'm1.log'), { execArgv: MANAGER_EXEC_ARGV, timeoutMs: START_TIMEOUT_MS });
    managers.push(first);
    const tokens = await first.request<{ Worker: string; Manager: string }>('tokens');
    for (const i of [2, 3]) {
      managers.push(
        await Child.start<ManagerProcInfo>(`manager-${i}`, MANAGER_ENTRY, mspec(i, { mode: 'join', remoteAddr: first.info.addr, token: tokens.Manager }), path.join(logDir, `m${i}.log`), {
          execArgv: MANAGER_EXEC_ARGV,
          timeoutMs: START_TIMEOUT_MS,
        }),
      );
    }
    let leader = await findLeader(managers);
    await leader.request('drain-managers');
    if (workers > 200) {
      // Every node gets an address on the ingress network; the default 10.0.0.0/24 (Docker's too)
      // holds 253. What an operator of a big swarm does: recreate ingress with a larger subnet.
      try {
        await leader.request('control', { method: 'removeNetwork', args: ['ingress'] });
        await leader.request('control', { method: 'createNetwork', args: [{ Name: 'ingress', Ingress: true, DriverConfiguration: { Name: 'overlay' }, IPAMOptions: { Configs: [{ Subnet: '10.0.0.0/16' }] } }] });
      } catch (err) {
        say(`warning: could not recreate the ingress network with a /16 (${(err as Error).message.split('\n')[0]}); nodes past 253 get no ingress address`);
      }
    }
    if (withNetwork) {
      // A /16: room for every task's address (a /24 holds 253).
      await leader.request('control', { method: 'createNetwork', args: [{ Name: NETWORK_NAME, DriverConfiguration: { Name: 'overlay' }, IPAMOptions: { Configs: [{ Subnet: '10.200.0.0/16' }] } }] });
    }
    say('managers up; starting workers');

    // Agents know every manager (the leader first); certificates come from the followers' CAs so
    // that the joins load the leader less.
    const addrs = [leader, ...managers.filter((m) => m !== leader)].map((m) => m.info.addr);
    const joinVia = managers.filter((m) => m !== leader).map((m) => m.info.addr);
    const t0 = performance.now();
    const starting: Promise<Child>[] = [];
    for (let p = 0; p < workerProcs; p++) {
      const count = Math.floor(workers / workerProcs) + (p < workers % workerProcs ? 1 : 0);
      const spec: WorkerProcSpec = { index: p, count, managers: addrs, joinVia, token: tokens.Worker, baseDir: path.join(base, `w${p}`), joinConcurrency: 8, startConcurrency: 4 };
      starting.push(Child.start(`workers-${p}`, WORKER_ENTRY, spec, path.join(logDir, `w${p}.log`), { execArgv: WORKER_EXEC_ARGV, timeoutMs: START_TIMEOUT_MS + count * 1000 }));
    }
    // A process that failed to start leaves the others tracked: cleanup() kills them by PID.
    procs.push(...(await Promise.all(starting)));
    let lastSay = performance.now();
    say(`${workers} workers joined (certificates) and their agents started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await until(
      `${workers} worker nodes ready`,
      async () => {
        const n = await managers[0]!.request<{ workersReady: number }>('nodes');
        if (performance.now() - lastSay > 10_000) {
          lastSay = performance.now();
          say(`  ${n.workersReady} worker nodes ready`);
        }
        return n.workersReady >= workers ? n : undefined;
      },
      CONVERGE_TIMEOUT_MS,
    );
    say(`${workers} workers joined and ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await settle(procs);

    if (warmupTasks > 0) await warmUp(await findLeader(managers), procs);
    const figures: RunFigures[] = [];
    for (let run = 1; run <= runs; run++) {
      leader = await findLeader(managers);
      figures.push(await oneRun(run, leader, managers, procs));
    }
    const row = medianRow(
      { bench: 'cluster', system: 'shoal', nodes: managers.length, workers, worker_procs: workerProcs, tasks, heartbeat_period_ms: heartbeatMs, network: withNetwork ? 'overlay' : 'none', warmup_tasks: warmupTasks },
      figures,
    );
    const rows: BenchRow[] = [row];
    if (opts.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
    else {
      process.stdout.write(`${formatTable(rows)}\n`);
      process.stdout.write(`(${os.availableParallelism()} CPUs; seconds = service create → every task RUNNING in the leader's store; Nomad C1M: 3,750 tasks/s)\n`);
    }
    ok = true;
  } finally {
    await Promise.allSettled(procs.map((p) => p.stop(20_000)));
    await Promise.allSettled(managers.map((m) => m.stop(20_000)));
    await cleanup();
    if (ok) await rm(logDir, { recursive: true, force: true });
    else say(`logs kept in ${logDir}`);
  }
}

async function oneRun(run: number, leader: Child<ManagerProcInfo>, managers: readonly Child<ManagerProcInfo>[], procs: readonly Child[]): Promise<RunFigures> {
  const serviceName = `bench-${run}`;
  const followersOf = managers.filter((m) => m !== leader);
  const before = await leader.request<ManagerStats>('stats');
  const followersBefore = await Promise.all(followersOf.map((m) => m.request<ManagerStats>('stats')));
  const workersBefore = await Promise.all(procs.map((p) => p.request<WorkerProcStats>('stats')));
  const runningBefore = workersBefore.reduce((a, w) => a + w.started - w.stopped, 0);
  if (profDir !== undefined) {
    await mkdir(profDir, { recursive: true });
    await Promise.all([leader.request('profile-start'), procs[0]!.request('profile-start'), ...followersOf.slice(0, 1).map((f) => f.request('profile-start'))]);
  }
  const hbConverging: CounterSample[] = [{ ms: 0, value: before.heartbeats }];
  const samples: ProgressSample[] = [];
  let startedMs: number | null = null;
  const t0 = performance.now();
  const svc = await leader.request<{ ID: string }>('control', {
    method: 'createService',
    args: [
      {
        Name: serviceName,
        TaskTemplate: {
          ContainerSpec: { Image: 'busybox:latest', Command: ['sleep', 'infinity'] },
          RestartPolicy: { Condition: 'any' },
          ...(withNetwork ? { Networks: [{ Target: NETWORK_NAME }] } : {}),
        },
        Mode: { Replicated: { Replicas: tasks } },
      },
    ],
  });
  let last: Progress | undefined;
  await until(
    `${tasks} tasks RUNNING`,
    async () => {
      const p = await leader.request<Progress & { version: number; heartbeats: number }>('progress', { serviceId: svc.ID });
      const ms = performance.now() - t0;
      if (startedMs === null) {
        const ws = await Promise.all(procs.map((w) => w.request<Pick<WorkerProcStats, 'started' | 'stopped'>>('started')));
        if (ws.reduce((a, w) => a + w.started - w.stopped, 0) - runningBefore >= tasks) startedMs = ms;
      }
      samples.push({ ms, wanted: p.wanted, assigned: p.assigned, running: p.running, failed: p.failed });
      hbConverging.push({ ms, value: p.heartbeats });
      if (last === undefined || Math.floor(p.running / (tasks / 10)) !== Math.floor(last.running / (tasks / 10))) say(`  ${(ms / 1000).toFixed(2)} s: ${p.wanted} created, ${p.assigned} assigned, ${p.running} running`);
      last = p;
      return p.running >= tasks ? p : undefined;
    },
    CONVERGE_TIMEOUT_MS,
  );
  const after = await leader.request<ManagerStats>('stats');
  const followersAfter = await Promise.all(followersOf.map((m) => m.request<ManagerStats>('stats')));
  const workersAfter = await Promise.all(procs.map((p) => p.request<WorkerProcStats>('stats')));
  if (profDir !== undefined) {
    for (const [who, child] of [['leader', leader], ['workers-0', procs[0]!], ...followersOf.slice(0, 1).map((f) => ['follower', f] as const)] as const) {
      const file = path.join(profDir, `${who}-run${run}.cpuprofile`);
      await child.request('profile-stop', { file });
      const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
      say(`CPU profile of ${who} written to ${file}; top self time:\n${formatProfileSummary(summarizeProfile(profile, 25))}`);
    }
  }
  if (process.env['SHOAL_BENCH_HEAP'] === '1') {
    // What holds the managers' memory after convergence: V8's heap by space before and after a full GC.
    for (const [who, child] of [['leader', leader], ...followersOf.slice(0, 1).map((f) => ['follower', f] as const)] as const) {
      const file = profDir !== undefined ? path.join(profDir, `${who}-run${run}.heapsnapshot`) : undefined;
      say(`run ${run}: ${who} memory: ${JSON.stringify(await child.request('heap', file !== undefined && process.env['SHOAL_BENCH_HEAP_SNAPSHOT'] === '1' ? { snapshot: file } : {}))}`);
    }
  }
  if (!(await leader.request<boolean>('leading'))) say(`warning: ${leader.name} lost the leadership during run ${run} (an overloaded machine delays Raft heartbeats): its figures mix two leaders`);
  const ph = phases(samples, tasks);
  say(`run ${run}: all created at ${fmt(ph.created_ms)} s, all assigned at ${fmt(ph.assigned_ms)} s, every pretend task started on the workers at ${fmt(startedMs)} s, all running in the store at ${fmt(ph.running_ms)} s`);
  const agentDelta = (k: keyof WorkerProcStats['agent']): string => (workersAfter.reduce((a, w, i) => a + w.agent[k] - workersBefore[i]!.agent[k], 0) / tasks).toFixed(2);
  for (const [who, b, a] of [['leader', before, after] as const, ...followersOf.map((f, i) => [f.name, followersBefore[i]!, followersAfter[i]!] as const)]) {
    const t = (k: keyof ManagerStats['threads']): string => ((a.threads[k] - b.threads[k]) / tasks).toFixed(3);
    const writes = a.store_actions - b.store_actions;
    say(
      `run ${run}: ${who}: CPU ms per task main thread ${t('main_user_ms')} user + ${t('main_sys_ms')} sys, other threads ${t('other_user_ms')} + ${t('other_sys_ms')}; ` +
        `store: ${a.store_entries - b.store_entries} entries, ${writes} object writes (${(writes / tasks).toFixed(2)} per task, ${Math.round((a.store_bytes - b.store_bytes) / Math.max(1, writes))} entry bytes each), ${a.store_watches} watches`,
    );
  }
  say(
    `run ${run}: leader loops: ${after.scheduler_passes - before.scheduler_passes} scheduler passes (${after.scheduler_held_passes - before.scheduler_held_passes} waited for a creation burst), ` +
      `${after.replicated_passes - before.replicated_passes} replicated orchestrator passes, ${after.creation_bursts - before.creation_bursts} creation bursts, ` +
      `${after.placed_at_creation - before.placed_at_creation} tasks created placed`,
  );
  const reconnects = workersAfter.reduce((a, w, i) => a + w.sessions_established - workersBefore[i]!.sessions_established, 0);
  if (reconnects > 0) say(`run ${run}: ${reconnects} agent sessions were established again during the run (each a TLS handshake and a complete assignment set)`);
  say(`run ${run}: per task, the agents sent ${agentDelta('statusCalls')} status calls with ${agentDelta('statusItems')} items and ${agentDelta('heartbeats')} heartbeats, applied ${agentDelta('assignmentMessages')} assignment messages with ${agentDelta('assignmentItems')} items, wrote ${agentDelta('dbBatches')} LevelDB batches of ${agentDelta('dbOps')} ops`);
  const workerThreads = (k: keyof WorkerProcStats['threads']): string => (workersAfter.reduce((a, w, i) => a + w.threads[k] - workersBefore[i]!.threads[k], 0) / tasks).toFixed(3);
  say(`run ${run}: worker processes: CPU ms per task main thread ${workerThreads('main_ms')}, other threads ${workerThreads('other_ms')} (V8's compiler and GC threads, LevelDB)`);

  // Steady state: heartbeats only.
  const hbSteady: CounterSample[] = [{ ms: 0, value: after.heartbeats }];
  const s0 = performance.now();
  await sleep(steadyS * 1000);
  const steady = await leader.request<ManagerStats>('stats');
  hbSteady.push({ ms: performance.now() - s0, value: steady.heartbeats });
  const followersSteady = await Promise.all(followersOf.map((m) => m.request<ManagerStats>('stats')));
  const workersSteady = await Promise.all(procs.map((p) => p.request<WorkerProcStats>('stats')));
  const steadyWindowS = (performance.now() - s0) / 1000;
  const workersIdleCpuMs = workersSteady.reduce((a, w, i) => a + w.cpu_ms - workersAfter[i]!.cpu_ms, 0);
  const workersConvergingCpuMs = workersAfter.reduce((a, w, i) => a + w.cpu_ms - workersBefore[i]!.cpu_ms, 0);
  say(
    `run ${run}: worker processes' CPU: ${(workersConvergingCpuMs / (ph.running_ms ?? 1)).toFixed(3)} s/s while converging, ${(workersIdleCpuMs / 1000 / steadyWindowS).toFixed(3)} s/s in the ${steadyWindowS.toFixed(1)} s after (idle: heartbeats, timers, keepalives)`,
  );
  const idleMessages = workersSteady.reduce((a, w, i) => a + w.agent.assignmentMessages - workersAfter[i]!.agent.assignmentMessages, 0);
  const idleItems = workersSteady.reduce((a, w, i) => a + w.agent.assignmentItems - workersAfter[i]!.agent.assignmentItems, 0);
  if (idleMessages > 0) say(`run ${run}: after converging, the agents applied ${idleMessages} assignment messages with ${idleItems} items`);

  const sum = <T>(xs: readonly T[], f: (x: T) => number): number => xs.reduce((a, x) => a + f(x), 0);
  const running = sum(workersSteady, (w) => w.started - w.stopped);
  if (running - runningBefore !== tasks) say(`warning: the simulated executors run ${running - runningBefore} tasks of this run, the store says ${tasks}`);
  const figures = summarizeRun({
    tasks,
    phases: ph,
    heartbeatsConverging: hbConverging,
    heartbeatsSteady: hbSteady,
    executorsStartedMs: startedMs,
    leaderCpuMs: after.cpu_ms - before.cpu_ms,
    followersCpuMs: sum(followersAfter, (f) => f.cpu_ms) - sum(followersBefore, (f) => f.cpu_ms),
    workersCpuMs: sum(workersAfter, (w) => w.cpu_ms) - sum(workersBefore, (w) => w.cpu_ms),
    rssMb: steady.rss_mb,
    followerRssMb: Math.max(...followersSteady.map((f) => f.rss_mb)),
    workerProcRssMb: Math.max(...workersSteady.map((w) => w.rss_mb)),
    statusCommits: after.writer_commits - before.writer_commits,
    statusItems: after.writer_items - before.writer_items,
  });
  if (run < runs) {
    // Make room for the next run: remove the service and wait until every pretend task stopped.
    await leader.request('control', { method: 'removeService', args: [svc.ID] });
    await until(
      'the service tasks to stop on the workers',
      async () => {
        const ws = await Promise.all(procs.map((p) => p.request<WorkerProcStats>('stats')));
        return ws.every((w) => w.started === w.stopped) ? true : undefined;
      },
      CONVERGE_TIMEOUT_MS,
    );
  }
  return figures;
}

/**
 * A service of `warmupTasks` replicas converges, is removed, and the bench waits until every
 * pretend task stopped and the store holds no task (the reaper deleted them): the measured run
 * then starts on a cluster whose processes have run tasks before, with nothing left over.
 */
async function warmUp(leader: Child<ManagerProcInfo>, procs: readonly Child[]): Promise<void> {
  const t0 = performance.now();
  const svc = await leader.request<{ ID: string }>('control', {
    method: 'createService',
    args: [
      {
        Name: 'bench-warmup',
        TaskTemplate: { ContainerSpec: { Image: 'busybox:latest', Command: ['sleep', 'infinity'] }, RestartPolicy: { Condition: 'any' }, ...(withNetwork ? { Networks: [{ Target: NETWORK_NAME }] } : {}) },
        Mode: { Replicated: { Replicas: warmupTasks } },
      },
    ],
  });
  await until(`${warmupTasks} warm-up tasks RUNNING`, async () => ((await leader.request<Progress>('progress', { serviceId: svc.ID })).running >= warmupTasks ? true : undefined), CONVERGE_TIMEOUT_MS);
  await leader.request('control', { method: 'removeService', args: [svc.ID] });
  await until(
    'the warm-up tasks to stop on the workers and leave the store',
    async () => {
      const ws = await Promise.all(procs.map((p) => p.request<WorkerProcStats>('stats')));
      if (!ws.every((w) => w.started === w.stopped)) return undefined;
      return (await leader.request<number>('task-count')) === 0 ? true : undefined;
    },
    CONVERGE_TIMEOUT_MS,
  );
  say(`warm-up: ${warmupTasks} tasks converged, removed and reaped in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** The manager that leads with its orchestrators running (polled, bounded). */
async function findLeader(managers: readonly Child<ManagerProcInfo>[]): Promise<Child<ManagerProcInfo>> {
  return until(
    'a manager leading with its orchestrators running',
    async () => {
      for (const m of managers) if (await m.request<boolean>('leading')) return m;
      return undefined;
    },
    START_TIMEOUT_MS,
  );
}

function fmt(ms: number | null): string {
  return ms === null ? 'never' : (ms / 1000).toFixed(2);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench:cluster failed: ${(err as Error).stack ?? String(err)}\n`);
  await cleanup();
  process.exit(1);
});
