// `node --import tsx bench/store/writes-inproc.ts [--tree NAME=DIR ...] [--rounds N] [--configs N]
//    [--warmup N] [--prof DIR] [--json]`
//
// CPU per control-API write of one shoald with only the swarm plugin (no worker agent), started as
// a child process from each source tree given (default: this tree), the client here. Every tree gets
// a fresh daemon and `warmup` config creates (JIT), then per round `configs` POST /configs/create at
// concurrency 1 and at 16, the trees' order alternating between rounds. Figures: medians over
// rounds of ops/s, p50, p99 and the daemon's CPU (user + system, from /proc) per write — the steadier
// figure on a shared machine. `--prof DIR` writes a V8 CPU profile of each daemon's main thread
// over each batch of creates to DIR/NAME-cC-ROUND.cpuprofile (its CPU figure includes the profiler's).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EngineApi } from '../vs-swarm/api.js';
import { median, percentile, round, sortedAsc, timedConcurrent } from '../stats.js';

interface Tree {
  readonly name: string;
  readonly dir: string;
}

interface Args {
  trees: Tree[];
  rounds: number;
  configs: number;
  warmup: number;
  prof: string | undefined;
  json: boolean;
}

const MAX = 50_000;
const START_LIMIT_MS = 30_000;

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { trees: [], rounds: 3, configs: 2000, warmup: 3000, prof: undefined, json: false };
  const num = (v: string | undefined): number => Math.max(1, Math.min(MAX, Number.parseInt(v ?? '', 10) || 1));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--tree') {
      const v = argv[++i] ?? '';
      const eq = v.indexOf('=');
      if (eq <= 0) throw new Error(`--tree wants NAME=DIR, got ${v}`);
      a.trees.push({ name: v.slice(0, eq), dir: resolve(v.slice(eq + 1)) });
    } else if (arg === '--rounds') a.rounds = Math.min(20, num(argv[++i]));
    else if (arg === '--configs') a.configs = num(argv[++i]);
    else if (arg === '--warmup') a.warmup = num(argv[++i]);
    else if (arg === '--prof') a.prof = resolve(argv[++i] ?? '.');
    else if (arg === '--json') a.json = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  if (a.trees.length === 0) a.trees.push({ name: 'this', dir: resolve(import.meta.dirname, '../..') });
  return a;
}

function cpuMs(pid: number, tid?: number): number {
  const f = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + (process.env['HW_USER_ONLY'] ? 0 : Number(rest[12]))) * 10;
}

interface Running {
  readonly tree: Tree;
  readonly child: ChildProcess;
  readonly api: EngineApi;
}

async function startDaemon(tree: Tree, dir: string): Promise<Running> {
  const socket = join(dir, 'shoal.sock');
  const nodeArgs = ['--import', 'tsx'];
  const child = spawn(process.execPath, [...nodeArgs, join(import.meta.dirname, 'writes-daemon.ts'), tree.dir, socket, join(dir, 'data')], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    cwd: tree.dir,
  });
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${tree.name}: daemon not ready in ${START_LIMIT_MS} ms`)), START_LIMIT_MS);
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) {
        clearTimeout(timer);
        ok();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${tree.name}: daemon exited (${code})`));
    });
  });
  const api = new EngineApi(socket);
  await api.json('POST', '/swarm/init', { ListenAddr: '127.0.0.1:0', AdvertiseAddr: '127.0.0.1' });
  return { tree, child, api };
}

/** Starts or stops the daemon's CPU profiler (see writes-daemon.ts); resolves when it has. */
async function profiler(r: Running, m: { prof: 'start' | 'metrics' } | { prof: 'stop'; path: string }): Promise<RaftCounters | undefined> {
  const answered = new Promise<RaftCounters | undefined>((ok) => r.child.once('message', (a: { raft?: RaftCounters }) => ok(a.raft)));
  r.child.send(m);
  return answered;
}

interface RaftCounters {
  readonly syncedSaves: number;
  readonly syncedSaveMs: number;
  readonly entriesSaved: number;
}

async function stopDaemon(r: Running): Promise<void> {
  r.api.close();
  if (r.child.exitCode !== null) return;
  const exited = new Promise<void>((ok) => r.child.once('exit', () => ok()));
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

interface One {
  readonly ops_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly cpu_us_per_op: number;
  /** The main thread's part of it (the rest: libuv's pool — LevelDB writes, fsync — and V8's helpers). */
  readonly main_us_per_op: number;
  /** Entries per synced save, and ms per synced save (the daemon's Raft node's counters). */
  readonly entries_per_save: number;
  readonly save_ms: number;
}

async function configBatch(r: Running, tag: string, count: number, concurrency: number, prof?: string): Promise<One> {
  const ids: string[] = [];
  const pid = r.child.pid!;
  if (prof !== undefined) await profiler(r, { prof: 'start' });
  const m0 = await profiler(r, { prof: 'metrics' });
  const c0 = cpuMs(pid);
  const main0 = cpuMs(pid, pid);
  const t = await timedConcurrent(count, concurrency, async (i) => {
    ids.push((await r.api.json<{ ID: string }>('POST', '/configs/create', { Name: `${tag}-${i}`, Data: Buffer.from(`value ${i}`).toString('base64') })).ID);
  });
  const cpu = cpuMs(pid) - c0;
  const mainCpu = cpuMs(pid, pid) - main0;
  const m1 = await profiler(r, { prof: 'metrics' });
  const saves = (m1?.syncedSaves ?? 0) - (m0?.syncedSaves ?? 0);
  const entriesPerSave = saves === 0 ? 0 : round(((m1?.entriesSaved ?? 0) - (m0?.entriesSaved ?? 0)) / saves, 2);
  const saveMs = saves === 0 ? 0 : round(((m1?.syncedSaveMs ?? 0) - (m0?.syncedSaveMs ?? 0)) / saves, 3);
  if (prof !== undefined) await profiler(r, { prof: 'stop', path: prof });
  await timedConcurrent(ids.length, 16, async (i) => {
    await r.api.json('DELETE', `/configs/${ids[i]}`);
  });
  const s = sortedAsc(t.ms);
  return { ops_per_s: round(count / t.seconds), p50_ms: round(percentile(s, 50), 2), p99_ms: round(percentile(s, 99), 2), cpu_us_per_op: round((cpu * 1000) / count), main_us_per_op: round((mainCpu * 1000) / count), entries_per_save: entriesPerSave, save_ms: saveMs };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dirs: string[] = [];
  const running: Running[] = [];
  const results = new Map<string, One[]>();
  const loads: number[] = [];
  try {
    for (const tree of args.trees) {
      const dir = await mkdtemp(join(tmpdir(), 'shoal-writes-'));
      dirs.push(dir);
      const r = await startDaemon(tree, dir);
      running.push(r);
      await configBatch(r, 'warm', args.warmup, 16);
    }
    for (let round_ = 0; round_ < args.rounds; round_++) {
      const order = round_ % 2 === 0 ? running : [...running].reverse();
      for (const r of order) {
        for (const c of [1, 16]) {
          const one = await configBatch(r, `r${round_}c${c}`, c === 1 ? Math.ceil(args.configs / 2) : args.configs, c, args.prof !== undefined ? join(args.prof, `${r.tree.name}-c${c}-${round_}.cpuprofile`) : undefined);
          const key = `${r.tree.name}\t${c}`;
          results.set(key, [...(results.get(key) ?? []), one]);
          loads.push(loadavg()[0]!);
        }
      }
    }
  } finally {
    for (const r of running) await stopDaemon(r);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
  const rows = [...results].map(([key, ones]) => {
    const [system, c] = key.split('\t') as [string, string];
    const m = (f: (o: One) => number): number => round(median(ones.map(f)), 2);
    return {
      bench: 'config-writes', system, concurrency: Number(c), ops: c === '1' ? Math.ceil(args.configs / 2) : args.configs, rounds: ones.length,
      ops_per_s: m((o) => o.ops_per_s), p50_ms: m((o) => o.p50_ms), p99_ms: m((o) => o.p99_ms), cpu_us_per_op: m((o) => o.cpu_us_per_op),
      cpu_us_runs: ones.map((o) => o.cpu_us_per_op).join('/'),
      main_us_per_op: m((o) => o.main_us_per_op),
      entries_per_save: m((o) => o.entries_per_save), save_ms: m((o) => o.save_ms),
    };
  });
  const load = round(median(loads), 2);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(rows.map((r) => ({ ...r, load1: load })))}\n`);
    return;
  }
  process.stdout.write(`load average (1 min, median): ${load}\n`);
  process.stdout.write('system\tc\tops/s\tp50 ms\tp99 ms\tentries/save\tms/save\tmain µs/write\tµs CPU/write (median; runs)\n');
  for (const r of rows) process.stdout.write(`${r.system}\t${r.concurrency}\t${r.ops_per_s}\t${r.p50_ms}\t${r.p99_ms}\t${r.entries_per_save}\t${r.save_ms}\t${r.main_us_per_op}\t${r.cpu_us_per_op}; ${r.cpu_us_runs}\n`);
}

await main();
