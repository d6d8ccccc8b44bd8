// `node --import tsx bench/store/api-writes.ts --target NAME=SOCKET[@PID] [--target ...]
//    [--rounds N] [--configs N] [--services N] [--json]`
//
// Control-API writes against running daemons (e.g. two `shoal lab`s: one built from the code
// before a change, one after, or a Docker swarm), measured side by side: every round runs the
// same workload against each target in turn (the order alternates between rounds), so load on a
// shared machine hits every target alike. Workload per round and target, as bench:vs-swarm's
// `config-writes` and `service-writes`: `configs` × POST /configs/create at concurrency 1 and 16,
// `services` × POST /services/create (0 replicas) at 1 and 16. The table shows per-target medians
// over rounds of ops/s, p50 and p99 (each round's own percentiles), plus the 1-minute load average.
// With `@PID` (the daemon's process), also the daemon's CPU time (user + system, from /proc) per
// operation: on a busy machine the steadier figure of the two.
// Everything created is removed at the end of each round.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { EngineApi } from '../vs-swarm/api.js';
import { median, percentile, round, sortedAsc, timedConcurrent } from '../stats.js';

interface Target {
  readonly name: string;
  readonly socket: string;
  readonly pid: number | undefined;
}

interface Args {
  targets: Target[];
  rounds: number;
  configs: number;
  services: number;
  json: boolean;
}

interface Row {
  bench: 'config-writes' | 'service-writes';
  system: string;
  concurrency: number;
  ops: number;
  rounds: number;
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
  cpu_ms_per_op: number | null;
  load1: number;
}

const MAX_ROUNDS = 20;
const MAX_OPS = 20_000;

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { targets: [], rounds: 3, configs: 1000, services: 200, json: false };
  const num = (v: string | undefined, max: number): number => Math.max(1, Math.min(max, Number.parseInt(v ?? '', 10) || 1));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--target') {
      const v = argv[++i] ?? '';
      const eq = v.indexOf('=');
      if (eq <= 0) throw new Error(`--target wants NAME=SOCKET[@PID], got ${v}`);
      const [socket, pid] = v.slice(eq + 1).split('@') as [string, string | undefined];
      a.targets.push({ name: v.slice(0, eq), socket, pid: pid === undefined ? undefined : Number.parseInt(pid, 10) });
    } else if (arg === '--rounds') a.rounds = num(argv[++i], MAX_ROUNDS);
    else if (arg === '--configs') a.configs = num(argv[++i], MAX_OPS);
    else if (arg === '--services') a.services = num(argv[++i], MAX_OPS);
    else if (arg === '--json') a.json = true;
    else throw new Error(`unknown argument ${arg} (expected --target NAME=SOCKET, --rounds N, --configs N, --services N, --json)`);
  }
  if (a.targets.length === 0) throw new Error('give at least one --target NAME=SOCKET');
  return a;
}


interface One {
  readonly ops_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly cpu_ms_per_op: number | null;
}

/** User + system CPU time of a process so far, in ms (/proc/PID/stat, clock ticks of 10 ms). */
function cpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function measured(pid: number | undefined, count: number, concurrency: number, one: (i: number) => Promise<void>): Promise<One> {
  const c0 = cpuMs(pid);
  const r = await timedConcurrent(count, concurrency, one);
  const c1 = cpuMs(pid);
  const s = sortedAsc(r.ms);
  return { ops_per_s: count / r.seconds, p50_ms: percentile(s, 50), p99_ms: percentile(s, 99), cpu_ms_per_op: c0 === null || c1 === null ? null : (c1 - c0) / count };
}

let seq = 0;
function unique(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Date.now().toString(36)}${(seq++).toString(36)}`;
}

async function round1(api: EngineApi, pid: number | undefined, args: Args): Promise<Map<string, One>> {
  const out = new Map<string, One>();
  const configIds: string[] = [];
  const serviceIds: string[] = [];
  for (const c of [1, 16]) {
    const prefix = unique(`abc${c}-`);
    const r = await measured(pid, args.configs, c, async (i) => {
      const res = await api.json<{ ID: string }>('POST', '/configs/create', { Name: `${prefix}-${i}`, Data: Buffer.from(`value ${i}`).toString('base64') });
      configIds.push(res.ID);
    });
    out.set(`config-writes/${c}`, r);
  }
  for (const c of [1, 16]) {
    const prefix = unique(`abs${c}-`);
    const r = await measured(pid, args.services, c, async (i) => {
      const res = await api.json<{ ID: string }>('POST', '/services/create', {
        Name: `${prefix}-${i}`,
        TaskTemplate: { ContainerSpec: { Image: 'busybox:latest', Args: ['/bin/sleep', '86400'] } },
        Mode: { Replicated: { Replicas: 0 } },
      });
      serviceIds.push(res.ID);
    });
    out.set(`service-writes/${c}`, r);
  }
  for (const id of serviceIds) await api.json('DELETE', `/services/${id}`);
  for (const id of configIds) await api.json('DELETE', `/configs/${id}`);
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const apis = new Map(args.targets.map((t) => [t.name, new EngineApi(t.socket)]));
  const results = new Map<string, One[]>();
  const loads: number[] = [];
  try {
    for (let r = 0; r < args.rounds; r++) {
      const order = r % 2 === 0 ? args.targets : [...args.targets].reverse();
      for (const t of order) {
        const got = await round1(apis.get(t.name)!, t.pid, args);
        loads.push(loadavg()[0]!);
        for (const [k, v] of got) {
          const key = `${t.name}|${k}`;
          results.set(key, [...(results.get(key) ?? []), v]);
        }
        if (!args.json) process.stderr.write(`round ${r + 1}/${args.rounds} ${t.name} done (load ${loadavg()[0]!.toFixed(2)})\n`);
      }
    }
  } finally {
    for (const api of apis.values()) api.close();
  }
  const rows: Row[] = [];
  for (const [key, list] of results) {
    const [system, rest] = key.split('|') as [string, string];
    const [bench, c] = rest.split('/') as [Row['bench'], string];
    rows.push({
      bench,
      system,
      concurrency: Number(c),
      ops: bench === 'config-writes' ? args.configs : args.services,
      rounds: list.length,
      ops_per_s: round(median(list.map((x) => x.ops_per_s)), 1),
      p50_ms: round(median(list.map((x) => x.p50_ms)), 2),
      p99_ms: round(median(list.map((x) => x.p99_ms)), 2),
      cpu_ms_per_op: list[0]!.cpu_ms_per_op === null ? null : round(median(list.map((x) => x.cpu_ms_per_op!)), 3),
      load1: round(median(loads), 2),
    });
  }
  rows.sort((a, b) => a.bench.localeCompare(b.bench) || a.concurrency - b.concurrency || a.system.localeCompare(b.system));
  if (args.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  const head = ['bench', 'c', 'system', 'ops', 'ops/s', 'p50 ms', 'p99 ms', 'daemon cpu ms/op'];
  const lines = rows.map((x) => [x.bench, String(x.concurrency), x.system, String(x.ops), String(x.ops_per_s), String(x.p50_ms), String(x.p99_ms), x.cpu_ms_per_op === null ? '-' : String(x.cpu_ms_per_op)]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const l of [head, ...lines]) process.stdout.write(`${l.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
  process.stdout.write(`medians over ${args.rounds} round(s); load average (1 min, median after each target): ${round(median(loads), 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`api-writes: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
