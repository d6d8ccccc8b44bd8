// `npm run bench:raft [-- --json] [-- --quick] [-- --runs N] [-- --only shoal|etcd] [-- --concurrency N] [-- --etcd-client etcd3|grpc] [-- --cpu-prof DIR]`
//
// Shoal's Raft (3 member processes: RaftNode + LevelDB log with fsync + TCP transport) against
// Debian's etcd 3.4 (3 members), both on loopback on this machine in the same run, driven one
// after the other by the same kind of load process (load.ts): 8-byte sequential keys, 256-byte
// values, concurrency 1, 16 and 256, fixed totals. Each configuration runs `--runs` times
// (fresh load process each time, the systems taking turns); rows report the median of each figure.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureEtcd, REPO_ROOT, startEtcd, startShoal, type Cluster } from './clusters.js';
import type { LoadConfig } from './load.js';
import { cleanup, installExitHandlers, startChild, stopChild } from './procs.js';
import { formatTable, median, medianRow, round, type BenchRow, type RunFigures, type System } from './stats.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PAYLOAD_BYTES = 256;
const NODES = 3;
const LOAD_LIMIT_MS = 180_000;

interface Workload {
  readonly concurrency: number;
  readonly total: number;
}

const FULL: readonly Workload[] = [
  { concurrency: 1, total: 2_000 },
  { concurrency: 16, total: 10_000 },
  { concurrency: 256, total: 20_000 },
];
const QUICK: readonly Workload[] = [
  { concurrency: 1, total: 200 },
  { concurrency: 16, total: 1_000 },
  { concurrency: 256, total: 2_000 },
];

interface Args {
  json: boolean;
  quick: boolean;
  runs: number;
  only: System | null;
  cpuProfDir: string | null;
  tickMs: number;
  /** Only the workloads with this concurrency, or all. */
  concurrency: number | null;
  etcdClient: 'etcd3' | 'grpc';
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { json: false, quick: false, runs: 0, only: null, cpuProfDir: null, tickMs: 100, concurrency: null, etcdClient: 'etcd3' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--json') a.json = true;
    else if (arg === '--quick') a.quick = true;
    else if (arg === '--runs') a.runs = Math.max(1, Math.min(20, Number.parseInt(value(), 10) || 1));
    else if (arg === '--only') {
      const v = value();
      if (v !== 'shoal' && v !== 'etcd') throw new Error('--only takes shoal or etcd');
      a.only = v;
    } else if (arg === '--cpu-prof') a.cpuProfDir = path.resolve(value());
    else if (arg === '--etcd-client') {
      const v = value();
      if (v !== 'etcd3' && v !== 'grpc') throw new Error('--etcd-client takes etcd3 or grpc');
      a.etcdClient = v;
    } else if (arg === '--concurrency') a.concurrency = Number.parseInt(value(), 10);
    else if (arg === '--tick-ms') a.tickMs = Math.max(1, Number.parseInt(value(), 10) || 100);
    else throw new Error(`unknown argument ${arg} (known: --json --quick --runs N --only shoal|etcd --concurrency N --etcd-client etcd3|grpc --cpu-prof DIR --tick-ms N)`);
  }
  if (a.runs === 0) a.runs = a.quick ? 1 : 3;
  return a;
}

function note(msg: string): void {
  process.stderr.write(`bench:raft: ${msg}\n`);
}

let keyBase = 0;

async function runLoad(cluster: Cluster, w: Workload, warmup: number, logDir: string, etcdClient: 'etcd3' | 'grpc'): Promise<RunFigures> {
  const cfg: LoadConfig = {
    system: cluster.system,
    port: cluster.leaderPort,
    total: w.total,
    concurrency: w.concurrency,
    payloadBytes: PAYLOAD_BYTES,
    warmup,
    keyBase,
    etcdClient,
  };
  keyBase += 10_000_000;
  const s = startChild(`load ${cluster.system}`, process.execPath, ['--import', 'tsx', path.join(HERE, 'load.ts'), JSON.stringify(cfg)], path.join(logDir, 'load.log'), {
    pipeStdout: true,
    cwd: REPO_ROOT,
  });
  let out = '';
  s.child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const timer = setTimeout(() => void stopChild(s, 1000), LOAD_LIMIT_MS);
  let err = '';
  s.child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const code = await s.exited;
  clearTimeout(timer);
  if (err.startsWith('slow')) note(err.trim());
  const line = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || line === '') throw new Error(`load client for ${cluster.system} failed (exit ${code}); see ${s.logFile}`);
  return JSON.parse(line) as RunFigures;
}

interface Series {
  readonly runs: RunFigures[];
  readonly perFsync: number[];
  readonly fsyncMs: number[];
}

/** One measured run against `cluster`, with the leader's fsync batching over the run. */
async function measure(cluster: Cluster, w: Workload, r: number, args: Args, into: Series): Promise<void> {
  const warmup = Math.min(1000, Math.max(50, Math.floor(w.total / 10)));
  const before = await cluster.leaderFsyncs();
  // Server CPU covers the warm-up too; divided by all puts of the run.
  const cpuBefore = cluster.serverCpuMs();
  const f0 = await runLoad(cluster, w, warmup, cluster.dir, args.etcdClient);
  const serverCpu = cluster.serverCpuMs() - cpuBefore;
  const f: RunFigures = { ...f0, server_cpu_us_per_op: Math.round((serverCpu * 1000) / (w.total + warmup)) };
  const after = await cluster.leaderFsyncs();
  const fsyncs = after.fsyncs - before.fsyncs;
  const perFsync = (after.entries - before.entries) / fsyncs;
  const fsyncMs = (after.fsyncMs - before.fsyncMs) / fsyncs;
  into.runs.push(f);
  into.perFsync.push(perFsync);
  into.fsyncMs.push(fsyncMs);
  note(
    `${cluster.system} c=${w.concurrency} total=${w.total} run ${r + 1}/${args.runs}: ${f.ops_per_s.toFixed(0)} ops/s, p50 ${f.p50_ms} ms, p99 ${f.p99_ms} ms` +
      `${f.errors ? `, ${f.errors} errors` : ''}; leader: ${perFsync.toFixed(1)} entries/fsync, fsync ${fsyncMs.toFixed(2)} ms; ` +
      `cpu per put: servers ${f.server_cpu_us_per_op} us, client ${f.client_cpu_us_per_op ?? '?'} us`,
  );
}

/**
 * Both clusters stay up for the whole run and the systems take turns run by run (shoal, etcd,
 * shoal, etcd, …), so drifts in the machine's background load hit both alike; the idle cluster
 * only exchanges heartbeats meanwhile.
 */
async function benchAll(systems: readonly System[], args: Args, workloads: readonly Workload[]): Promise<BenchRow[]> {
  const clusters: Cluster[] = [];
  try {
    for (const system of systems) {
      note(`starting 3 ${system} members`);
      clusters.push(system === 'shoal' ? await startShoal({ tickMs: args.tickMs, cpuProfDir: args.cpuProfDir }) : await startEtcd());
    }
    const rows: BenchRow[] = [];
    for (const w of workloads) {
      const series = clusters.map((): Series => ({ runs: [], perFsync: [], fsyncMs: [] }));
      for (let r = 0; r < args.runs; r++) {
        for (const [i, c] of clusters.entries()) await measure(c, w, r, args, series[i]!);
      }
      for (const [i, c] of clusters.entries()) {
        const s = series[i]!;
        rows.push({
          ...medianRow({ bench: 'raft', system: c.system, nodes: NODES, concurrency: w.concurrency, payload_bytes: PAYLOAD_BYTES }, s.runs),
          client: c.system === 'shoal' ? 'shoal-tcp' : args.etcdClient,
          leader_entries_per_fsync: round(median(s.perFsync), 1),
          leader_fsync_ms: round(median(s.fsyncMs), 3),
        });
      }
    }
    return rows;
  } finally {
    await Promise.allSettled(clusters.map((c) => c.stop()));
  }
}

async function main(): Promise<void> {
  installExitHandlers();
  const args = parseArgs(process.argv.slice(2));
  const workloads = (args.quick ? QUICK : FULL).filter((w) => args.concurrency === null || w.concurrency === args.concurrency);
  if (workloads.length === 0) throw new Error(`no workload with concurrency ${args.concurrency} (have 1, 16, 256)`);
  if (args.only !== 'shoal') note(ensureEtcd());
  const systems = (['shoal', 'etcd'] as const).filter((s) => args.only === null || args.only === s);
  const rows = await benchAll(systems, args, workloads);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
  } else {
    process.stdout.write(
      `Raft: 3 members on loopback, fsync on, 8-byte keys, ${PAYLOAD_BYTES}-byte values; etcd driven by the ${args.etcdClient} client; median of ${args.runs} run(s) each\n` +
        `${formatTable(rows)}\n`,
    );
  }
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench:raft failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
