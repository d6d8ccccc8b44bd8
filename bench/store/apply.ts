// `npm run bench:store-apply [-- --json] [-- --tasks N] [-- --batch N] [-- --rounds N] [-- --ab DIR] [-- --cold] [-- --v8 FLAGS] [-- --ab-v8 FLAGS]`
//
// The store's own CPU per object write, without Raft: what a leader spends to build, encode and
// apply a transaction (and fan its events out to watches), and what a follower spends to decode
// and apply the same committed entries. The workload is one task's life in bench:cluster, five
// writes per task in transactions of `--batch` objects (default 500): create (as the replicated
// orchestrator does, the task's Spec is the service's TaskTemplate), allocate (Status pending),
// assign (NodeID, Status assigned), and two status reports (starting, running).
//
// - The leader's store has a proposer that applies each entry synchronously with the next index
//   (as a one-node Raft would, minus the log), and three task watches drained after each write
//   (orchestrator, dispatcher, allocator); it also keeps the entries.
// - A follower's store then applies those entries with `applyEntry`, phase by phase.
// - Figures are process CPU time (user + system) per object written; one warm-up pass first.
// - Also: `snapshotData()` and `restore()` of the resulting store (10,000 tasks by default).
//
// `--ab DIR` compares two trees side by side: DIR is another checkout of this repository (its
// `manager/store/memory-store.ts` is the "before"), and each round runs one child process for each
// tree, the order alternating between rounds; rows are medians over `--rounds` (default 5).
//
// `--cold` skips the warm-up pass: the figures are then a fresh process's first pass, V8's compiling
// of the store's code on its background threads included (process CPU counts every thread): what a
// fresh manager pays for its first big service. `--v8 "FLAGS"` starts every child with those V8
// flags; `--ab-v8 "FLAGS"` compares this tree under `--v8`'s flags ("before") with the same tree
// under these ("after"), alternated as `--ab` does.
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { MemoryStore as MemoryStoreT, NewObject, Service, StoreWatch, Task, TaskState } from '../../manager/store/index.js';
import { median, round } from '../stats.js';

interface Args {
  json: boolean;
  tasks: number;
  batch: number;
  rounds: number;
  ab: string | undefined;
  impl: string | undefined;
  child: boolean;
  /** No warm-up pass: the first pass's figures, compiling included. */
  cold: boolean;
  /** V8 flags for the children (split on spaces). */
  v8: string[];
  /** Compare this tree under `v8` against this tree under these flags. */
  abV8: string[] | undefined;
  /** Child only: write a V8 CPU profile of the follower's apply loop to this file. */
  profFollower: string | undefined;
}

interface Figures {
  readonly leader_us_per_write: number;
  readonly follower_us_per_write: number;
  readonly leader_us_by_phase: Record<string, number>;
  readonly follower_us_by_phase: Record<string, number>;
  readonly snapshot_ms: number;
  readonly restore_ms: number;
  readonly entry_bytes_per_write: number;
  readonly rss_mb: number;
}

interface Row {
  readonly bench: 'store-apply';
  readonly system: 'shoal';
  readonly tree: string;
  readonly side: 'leader' | 'follower' | 'snapshot' | 'restore';
  readonly tasks: number;
  readonly batch: number;
  readonly writes: number;
  readonly us_per_write: number;
  readonly ops_per_s: number;
  readonly rounds: number;
  readonly by_phase?: Record<string, number>;
  readonly seconds?: number;
  readonly rss_mb: number;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const THIS_TREE = path.resolve(HERE, '../..');
const PHASES = ['create', 'allocate', 'assign', 'starting', 'running'] as const;
type Phase = (typeof PHASES)[number];
const WARMUP_TASKS = 2_000;

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { json: false, tasks: 10_000, batch: 500, rounds: 5, ab: undefined, impl: undefined, child: false, profFollower: undefined, cold: false, v8: [], abV8: undefined };
  const flags = (s: string | undefined): string[] => (s ?? '').split(/\s+/).filter((f) => f !== '');
  const int = (s: string | undefined, min: number, max: number): number => Math.max(min, Math.min(max, Number.parseInt(s ?? '', 10) || min));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') a.json = true;
    else if (arg === '--tasks') a.tasks = int(argv[++i], 100, 200_000);
    else if (arg === '--batch') a.batch = int(argv[++i], 1, 10_000);
    else if (arg === '--rounds') a.rounds = int(argv[++i], 1, 20);
    else if (arg === '--ab') a.ab = path.resolve(argv[++i] ?? '.');
    else if (arg === '--impl') a.impl = path.resolve(argv[++i] ?? '.');
    else if (arg === '--child') a.child = true;
    else if (arg === '--cold') a.cold = true;
    else if (arg === '--v8') a.v8 = flags(argv[++i]);
    else if (arg === '--ab-v8') a.abV8 = flags(argv[++i]);
    else if (arg === '--prof-follower') a.profFollower = path.resolve(argv[++i] ?? 'follower.cpuprofile');
    else throw new Error(`unknown argument ${arg} (expected --json, --tasks N, --batch N, --rounds N, --ab DIR, --cold, --v8 FLAGS, --ab-v8 FLAGS)`);
  }
  return a;
}

type StoreModule = { MemoryStore: new (opts?: object) => MemoryStoreT };

async function loadStore(tree: string): Promise<StoreModule> {
  return (await import(pathToFileURL(path.join(tree, 'manager/store/memory-store.ts')).href)) as StoreModule;
}

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function serviceSpec(): NewObject<'service'> {
  return {
    Spec: {
      Name: 'web',
      Labels: { 'com.example.team': 'bench' },
      TaskTemplate: {
        ContainerSpec: {
          Image: 'busybox:latest@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79',
          Command: ['sleep', 'infinity'],
          Env: ['MODE=bench', 'LEVEL=3'],
          Labels: { tier: 'front' },
          StopGracePeriod: 10_000_000_000,
          Isolation: 'default',
        },
        Resources: { Limits: {}, Reservations: {} },
        RestartPolicy: { Condition: 'any', Delay: 5_000_000_000, MaxAttempts: 0 },
        Placement: { Platforms: [{ Architecture: 'amd64', OS: 'linux' }] },
        ForceUpdate: 0,
        Runtime: 'container',
      },
      Mode: { Replicated: { Replicas: 10_000 } },
      EndpointSpec: { Mode: 'vip' },
    },
  } as unknown as NewObject<'service'>;
}

/** One full pass: returns CPU µs per write per phase for leader and follower, and snapshot figures. */
async function pass(mod: StoreModule, tasks: number, batch: number, profFollower?: string): Promise<Figures> {
  let index = 0;
  let phaseEntries: Uint8Array[] = [];
  const leader: MemoryStoreT = new mod.MemoryStore({
    proposer: {
      propose: (data: Uint8Array) => {
        index++;
        phaseEntries.push(data);
        leader.applyEntry({ index, data });
        return Promise.resolve({ index, term: 1 });
      },
    },
  });
  const watches: StoreWatch[] = [leader.watch({ kinds: ['task', 'service'] }), leader.watch({ kinds: ['task', 'node'] }), leader.watch({ kinds: ['task', 'service', 'network', 'node'] })];
  const drain = (): void => {
    for (const w of watches) while (w.poll() !== null);
  };
  const { result: svc } = await leader.update((tx) => tx.create('service', serviceSpec()));
  drain();
  const all: Uint8Array[][] = [[...phaseEntries]];
  phaseEntries = [];
  const leaderUs: Record<string, number> = {};
  let bytes = 0;
  const ids: string[] = [];
  const nodes = Array.from({ length: 200 }, (_, i) => `node${String(i).padStart(21, '0')}`);
  for (const phase of PHASES) {
    const t0 = cpuUs();
    for (let from = 0; from < tasks; from += batch) {
      const n = Math.min(batch, tasks - from);
      await leader.update((tx) => {
        // One timestamp per pass, as the orchestrator's newTask gives every task it creates.
        const nowIso = new Date().toISOString();
        for (let i = 0; i < n; i++) {
          if (phase === 'create') {
            const t = tx.create('task', {
              Spec: (svc as Service).Spec.TaskTemplate,
              ServiceID: svc.ID,
              Slot: from + i + 1,
              NodeID: '',
              DesiredState: 'running',
              Status: { Timestamp: nowIso, State: 'new', Message: 'created' },
            } as NewObject<'task'>);
            ids.push(t.ID);
          } else {
            const t = tx.get('task', ids[from + i]!)!;
            tx.update('task', next(t, phase, nodes[(from + i) % nodes.length]!));
          }
        }
      });
      drain();
    }
    leaderUs[phase] = (cpuUs() - t0) / tasks;
    for (const e of phaseEntries) bytes += e.byteLength;
    all.push(phaseEntries);
    phaseEntries = [];
  }
  for (const w of watches) w.close();

  const follower: MemoryStoreT = new mod.MemoryStore({});
  const followerUs: Record<string, number> = {};
  let fi = 0;
  for (const e of all[0]!) follower.applyEntry({ index: ++fi, data: e });
  const session = profFollower === undefined ? undefined : await startProfile();
  for (let p = 0; p < PHASES.length; p++) {
    const t0 = cpuUs();
    for (const e of all[p + 1]!) follower.applyEntry({ index: ++fi, data: e });
    followerUs[PHASES[p]!] = (cpuUs() - t0) / tasks;
  }
  if (session !== undefined) await stopProfile(session, profFollower!);
  if (follower.count('task') !== tasks || follower.find('task').some((t) => t.Status.State !== 'running')) throw new Error('bench: the follower does not hold what the leader wrote');

  let t0 = performance.now();
  const snap = leader.snapshotData();
  const snapshotMs = performance.now() - t0;
  const fresh: MemoryStoreT = new mod.MemoryStore({});
  t0 = performance.now();
  fresh.restore({ metadata: { index }, data: snap });
  const restoreMs = performance.now() - t0;
  if (fresh.count('task') !== tasks) throw new Error('bench: restore lost tasks');
  leader.close();
  follower.close();
  fresh.close();
  const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0) / PHASES.length;
  return {
    leader_us_per_write: sum(leaderUs),
    follower_us_per_write: sum(followerUs),
    leader_us_by_phase: leaderUs,
    follower_us_by_phase: followerUs,
    snapshot_ms: snapshotMs,
    restore_ms: restoreMs,
    entry_bytes_per_write: bytes / (tasks * PHASES.length),
    rss_mb: process.memoryUsage().rss / 2 ** 20,
  };
}

function next(t: Task, phase: Exclude<Phase, 'create'>, node: string): Task {
  const ts = new Date().toISOString();
  const status = (State: TaskState, Message: string) => ({ ...t.Status, State, Message, Timestamp: ts });
  switch (phase) {
    case 'allocate':
      return { ...t, Status: status('pending', 'pending task scheduling') };
    case 'assign':
      return { ...t, NodeID: node, Status: status('assigned', 'scheduler assigned task to node') };
    case 'starting':
      return { ...t, Status: status('starting', 'starting') };
    case 'running':
      return { ...t, Status: { ...status('running', 'started'), ContainerStatus: { ContainerID: t.ID.repeat(2), PID: 4242, ExitCode: 0 } } as Task['Status'] };
  }
}

async function startProfile(): Promise<Session> {
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 100 });
  await s.post('Profiler.start');
  return s;
}

async function stopProfile(s: Session, file: string): Promise<void> {
  const { profile } = await s.post('Profiler.stop');
  s.disconnect();
  await writeFile(file, JSON.stringify(profile));
  process.stderr.write(`follower apply profile written to ${file}\n`);
}

async function runChild(a: Args): Promise<void> {
  const mod = await loadStore(a.impl ?? THIS_TREE);
  if (!a.cold) await pass(mod, Math.min(WARMUP_TASKS, a.tasks), a.batch);
  const f = await pass(mod, a.tasks, a.batch, a.profFollower);
  process.stdout.write(`${JSON.stringify(f)}\n`);
}

function child(tree: string, a: Args, v8: readonly string[]): Figures {
  const args = [...v8, '--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--impl', tree, '--tasks', String(a.tasks), '--batch', String(a.batch), ...(a.cold ? ['--cold'] : [])];
  const r = spawnSync(process.execPath, args, {
    cwd: THIS_TREE,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 16 * 2 ** 20,
  });
  if (r.status !== 0) throw new Error(`bench child (${tree}) failed: ${r.error?.message ?? ''}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Figures;
}

function medianByPhase(fs: readonly Figures[], key: 'leader_us_by_phase' | 'follower_us_by_phase'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of PHASES) out[p] = round(median(fs.map((f) => f[key][p]!)), 1);
  return out;
}

function rows(tree: string, fs: readonly Figures[], a: Args): Row[] {
  const writes = a.tasks * PHASES.length;
  const rss = round(median(fs.map((f) => f.rss_mb)), 0);
  const base = { bench: 'store-apply', system: 'shoal', tree, tasks: a.tasks, batch: a.batch, writes, rounds: fs.length, rss_mb: rss } as const;
  const side = (s: 'leader' | 'follower'): Row => {
    const us = median(fs.map((f) => (s === 'leader' ? f.leader_us_per_write : f.follower_us_per_write)));
    return { ...base, side: s, us_per_write: round(us, 1), ops_per_s: Math.round(1e6 / us), by_phase: medianByPhase(fs, s === 'leader' ? 'leader_us_by_phase' : 'follower_us_by_phase') };
  };
  const snapMs = median(fs.map((f) => f.snapshot_ms));
  const restoreMs = median(fs.map((f) => f.restore_ms));
  return [
    side('leader'),
    side('follower'),
    { ...base, side: 'snapshot', writes: a.tasks, us_per_write: round((snapMs * 1000) / a.tasks, 2), ops_per_s: Math.round((a.tasks * 1000) / snapMs), seconds: round(snapMs / 1000, 3) },
    { ...base, side: 'restore', writes: a.tasks, us_per_write: round((restoreMs * 1000) / a.tasks, 2), ops_per_s: Math.round((a.tasks * 1000) / restoreMs), seconds: round(restoreMs / 1000, 3) },
  ];
}

function table(rs: readonly Row[]): string {
  const head = ['tree', 'side', 'tasks', 'batch', 'µs CPU/write', 'writes/s', 'by phase (create/allocate/assign/starting/running)', 'rss MB'];
  const lines = rs.map((r) => [r.tree, r.side, String(r.tasks), String(r.batch), String(r.us_per_write), String(r.ops_per_s), r.by_phase ? Object.values(r.by_phase).join(' / ') : r.seconds !== undefined ? `${r.seconds} s total` : '', String(r.rss_mb)]);
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (l: readonly string[]): string => l.map((c, i) => c.padEnd(w[i]!)).join('  ');
  return [fmt(head), ...lines.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.child) return runChild(a);
  const trees: [string, string, string[]][] =
    a.ab !== undefined ? [['before', a.ab, a.v8], ['after', THIS_TREE, a.v8]] : a.abV8 !== undefined ? [['before', THIS_TREE, a.v8], ['after', THIS_TREE, a.abV8]] : [['this', THIS_TREE, a.v8]];
  const results = new Map<string, Figures[]>(trees.map(([name]) => [name, []]));
  for (let r = 0; r < a.rounds; r++) {
    const order = r % 2 === 0 ? trees : [...trees].reverse();
    for (const [name, dir, v8] of order) {
      const f = child(dir, a, v8);
      results.get(name)!.push(f);
      if (!a.json) process.stderr.write(`round ${r + 1}/${a.rounds} ${name}: leader ${round(f.leader_us_per_write, 1)} µs, follower ${round(f.follower_us_per_write, 1)} µs per write\n`);
    }
  }
  const out = trees.flatMap(([name]) => rows(name, results.get(name)!, a));
  if (a.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else process.stdout.write(`${table(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
