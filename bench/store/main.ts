// `npm run bench:store [-- --json] [-- --quick] [-- --runs N]`
//
// Control-plane writes through the replicated store, and watch delivery latency, with 3
// managers in this process: real RaftNodes, DurableLogs in temp dirs with fsync, the TCP
// transport on 127.0.0.1 (tick 100 ms, election 10 ticks — production settings), snapshots
// every 10,000 entries keeping 500.
//
// - store: `concurrency` writers each alternate "create a service" and "update it" (scale it)
//   through `store.update` on the leader; an operation ends when the transaction is committed
//   and applied on the leader. Figures: ops/s over the measured total, p50/p99 per operation.
// - store-watch: meanwhile one watch on the leader and one on a follower; for each committed
//   transaction, the time from the leader's watch yielding it (commit + apply on the leader)
//   to the follower's watch yielding it.
//
// The gRPC control API comes later (manager/controlapi); this measures the store beneath it.
import { pino } from 'pino';
import type { ChangeEvent, NewObject, ReplicatedStore, ServiceSpec, StoreWatch } from '../../manager/store/index.js';
import { StoreCluster } from '../../manager/store/testing/cluster.js';
import { percentile, median, round } from '../stats.js';

interface Args {
  json: boolean;
  quick: boolean;
  runs: number;
}

interface Workload {
  readonly concurrency: number;
  readonly total: number;
}

const FULL: readonly Workload[] = [
  { concurrency: 1, total: 1_500 },
  { concurrency: 16, total: 8_000 },
];
const QUICK: readonly Workload[] = [
  { concurrency: 1, total: 200 },
  { concurrency: 16, total: 1_000 },
];
const WARMUP_OPS = 50;
const NODES = 3;

interface StoreRow {
  readonly bench: 'store';
  readonly system: 'shoal';
  readonly nodes: number;
  readonly concurrency: number;
  readonly total: number;
  readonly seconds: number;
  readonly ops_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly errors: number;
  readonly rss_mb: number;
  readonly runs: number;
}

interface WatchRow {
  readonly bench: 'store-watch';
  readonly system: 'shoal';
  readonly nodes: number;
  readonly concurrency: number;
  readonly events: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly resyncs: number;
  readonly runs: number;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { json: false, quick: false, runs: 3 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') a.json = true;
    else if (arg === '--quick') a.quick = true;
    else if (arg === '--runs') a.runs = Math.max(1, Math.min(20, Number.parseInt(argv[++i] ?? '', 10) || 1));
    else throw new Error(`unknown argument ${arg} (expected --json, --quick, --runs N)`);
  }
  return a;
}


/** A service spec of realistic size (~700 bytes of JSON). */
function serviceSpec(name: string, replicas: number): NewObject<'service'> {
  const spec: ServiceSpec = {
    Name: name,
    Labels: { 'com.docker.stack.namespace': 'bench', 'com.docker.stack.image': 'nginx:alpine' },
    TaskTemplate: {
      ContainerSpec: {
        Image: 'nginx:alpine@sha256:4ff102c5d78d254a6f0da062b3cf39eaf07f01eec0927fd21e219d0af8bc0591',
        Labels: { 'com.docker.stack.namespace': 'bench' },
        Env: ['MODE=bench', 'LOG_LEVEL=info'],
        Args: ['nginx', '-g', 'daemon off;'],
        Init: false,
        DNSConfig: {},
      },
      Resources: { Limits: { MemoryBytes: 268435456 }, Reservations: {} },
      RestartPolicy: { Condition: 'any', Delay: 5_000_000_000, MaxAttempts: 0 },
      Placement: { Constraints: ['node.role==worker'], Platforms: [{ Architecture: 'amd64', OS: 'linux' }] },
      Networks: [{ Target: 'bench_default', Aliases: [name] }],
      ForceUpdate: 0,
      Runtime: 'container',
    },
    Mode: { Replicated: { Replicas: replicas } },
    UpdateConfig: { Parallelism: 1, Delay: 5_000_000_000, FailureAction: 'pause', Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: 'stop-first' },
    EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }] },
  };
  return { Spec: spec };
}

interface Measured {
  latenciesMs: number[];
  seconds: number;
  errors: number;
}

/** `total` operations by `concurrency` writers; each writer alternates create and update of its own service. */
async function runWrites(leader: ReplicatedStore, w: Workload, tag: string): Promise<Measured> {
  const store = leader.store;
  const latenciesMs: number[] = [];
  let next = 0;
  let errors = 0;
  const worker = async (wi: number): Promise<void> => {
    let mine: string | null = null;
    let replicas = 1;
    for (;;) {
      const i = next++;
      if (i >= w.total) return;
      const t0 = performance.now();
      try {
        if (mine === null) {
          const { result } = await store.update((tx) => tx.create('service', serviceSpec(`${tag}-w${wi}-${i}`, 1)));
          mine = result.ID;
        } else {
          const id = mine;
          replicas = (replicas % 5) + 1;
          await store.update((tx) => {
            const cur = tx.get('service', id)!;
            return tx.update('service', { ...cur, Spec: { ...cur.Spec, Mode: { Replicated: { Replicas: replicas } } } });
          });
          mine = null; // next operation creates a new one
        }
        latenciesMs.push(performance.now() - t0);
      } catch (err) {
        errors++;
        if (errors > 100) throw err;
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: w.concurrency }, (_, wi) => worker(wi)));
  return { latenciesMs, seconds: (performance.now() - start) / 1000, errors };
}

/** Consumes a watch until stopped, calling `on` with each event and the time it was yielded. */
function consume(watch: StoreWatch, on: (ev: ChangeEvent, atMs: number) => void): { done: Promise<number> } {
  const done = (async (): Promise<number> => {
    try {
      for await (const ev of watch) on(ev, performance.now());
      return 0;
    } catch {
      return 1; // a resync signal: counted, not expected at these rates
    }
  })();
  return { done };
}

async function measureOnce(c: StoreCluster, w: Workload, run: number): Promise<{ writes: Measured; watchMs: number[]; resyncs: number }> {
  const leader = await c.waitLeader(30_000);
  const follower = c.running().find((r) => r !== leader)!;
  await runWrites(leader, { concurrency: w.concurrency, total: WARMUP_OPS }, `warm-c${w.concurrency}-r${run}`);

  const leaderAt = new Map<number, number>();
  const followerAt = new Map<number, number>();
  const watchMs: number[] = [];
  const pair = (v: number): void => {
    const a = leaderAt.get(v);
    const b = followerAt.get(v);
    if (a === undefined || b === undefined) return;
    watchMs.push(b - a);
    leaderAt.delete(v);
    followerAt.delete(v);
  };
  const lw = leader.store.watch({ kinds: ['service'] });
  const fw = follower.store.watch({ kinds: ['service'] });
  const lc = consume(lw, (ev, at) => {
    leaderAt.set(ev.version, at);
    pair(ev.version);
  });
  const fc = consume(fw, (ev, at) => {
    followerAt.set(ev.version, at);
    pair(ev.version);
  });

  const writes = await runWrites(leader, w, `bench-c${w.concurrency}-r${run}`);
  // Let the follower catch up on the last few, then stop the watches.
  await c.waitApplied(leader.store.version, 10_000);
  await new Promise((r) => setTimeout(r, 20));
  lw.close();
  fw.close();
  const resyncs = (await lc.done) + (await fc.done);
  return { writes, watchMs, resyncs };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const workloads = args.quick ? QUICK : FULL;
  const log = (msg: string): void => {
    process.stderr.write(`[bench:store] ${msg}\n`);
  };
  const storeRows: StoreRow[] = [];
  const watchRows: WatchRow[] = [];
  const open = new Set<StoreCluster>();
  const onSignal = (): void => {
    void Promise.allSettled([...open].map((c) => c.close())).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    for (const w of workloads) {
      const runs: { writes: Measured; watchMs: number[]; resyncs: number }[] = [];
      for (let run = 0; run < args.runs; run++) {
        // A fresh cluster per run: every run starts from an empty log.
        const c = await StoreCluster.start({ size: NODES, tickMs: 100, logger: pino({ level: 'silent' }) });
        open.add(c);
        try {
          const r = await measureOnce(c, w, run);
          runs.push(r);
          const sorted = [...r.writes.latenciesMs].sort((a, b) => a - b);
          log(
            `concurrency ${w.concurrency} run ${run + 1}/${args.runs}: ${r.writes.latenciesMs.length} ops in ${r.writes.seconds.toFixed(2)} s, ` +
              `${(r.writes.latenciesMs.length / r.writes.seconds).toFixed(0)} ops/s, p50 ${percentile(sorted, 50).toFixed(2)} ms, ` +
              `${r.watchMs.length} watch events`,
          );
        } finally {
          open.delete(c);
          await c.close();
        }
      }
      const rss = process.memoryUsage().rss / (1024 * 1024);
      const perRun = runs.map((r) => {
        const sorted = [...r.writes.latenciesMs].sort((a, b) => a - b);
        const ws = [...r.watchMs].sort((a, b) => a - b);
        return {
          ops: sorted.length / r.writes.seconds,
          seconds: r.writes.seconds,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          wp50: percentile(ws, 50),
          wp99: percentile(ws, 99),
        };
      });
      storeRows.push({
        bench: 'store',
        system: 'shoal',
        nodes: NODES,
        concurrency: w.concurrency,
        total: w.total,
        seconds: round(median(perRun.map((r) => r.seconds)), 3),
        ops_per_s: round(median(perRun.map((r) => r.ops)), 1),
        p50_ms: round(median(perRun.map((r) => r.p50)), 3),
        p99_ms: round(median(perRun.map((r) => r.p99)), 3),
        errors: runs.reduce((n, r) => n + r.writes.errors, 0),
        rss_mb: round(rss, 1),
        runs: runs.length,
      });
      watchRows.push({
        bench: 'store-watch',
        system: 'shoal',
        nodes: NODES,
        concurrency: w.concurrency,
        events: Math.round(median(runs.map((r) => r.watchMs.length))),
        p50_ms: round(median(perRun.map((r) => r.wp50)), 3),
        p99_ms: round(median(perRun.map((r) => r.wp99)), 3),
        resyncs: runs.reduce((n, r) => n + r.resyncs, 0),
        runs: runs.length,
      });
    }
  } finally {
    await Promise.allSettled([...open].map((c) => c.close()));
  }

  const rows = [...storeRows, ...watchRows];
  if (args.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  const head = ['bench', 'nodes', 'concurrency', 'ops/events', 'seconds', 'ops_per_s', 'p50_ms', 'p99_ms'];
  const lines = rows.map((r) =>
    r.bench === 'store'
      ? [r.bench, r.nodes, r.concurrency, r.total, r.seconds, r.ops_per_s, r.p50_ms, r.p99_ms]
      : [r.bench, r.nodes, r.concurrency, r.events, '', '', r.p50_ms, r.p99_ms],
  );
  const table = [head, ...lines.map((l) => l.map(String))];
  const widths = head.map((_, i) => Math.max(...table.map((l) => l[i]!.length)));
  for (const l of table) process.stdout.write(`${l.map((c, i) => c.padStart(widths[i]!)).join('  ')}\n`);
  process.stdout.write(`(medians of ${args.runs} run(s); store-watch = leader watch yields a change → follower watch yields it)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:store failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
