// `node --import tsx bench/store/warmup.ts --target NAME=SOCKET@PID [--target ...] [--batches N]
//    [--batch N] [--concurrency C] [--json]`
//
// How a daemon's CPU per control-API write changes as it warms up: `batches` batches of `batch`
// POST /configs/create at concurrency `concurrency` against each target (fresh daemons, e.g. one
// started with other V8 flags than the next), the targets' order alternating between batches, so a
// load burst on a shared machine falls on all alike. Per batch and target: the daemon's CPU time
// (user + system, all threads, from /proc) per write in µs, and ops/s; at the end each daemon's PSS.
// Everything created is removed at the end.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { EngineApi } from '../vs-swarm/api.js';
import { round, timedConcurrent } from '../stats.js';

interface Target {
  readonly name: string;
  readonly api: EngineApi;
  readonly pid: number;
}

interface Args {
  targets: { name: string; socket: string; pid: number }[];
  batches: number;
  batch: number;
  concurrency: number;
  json: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { targets: [], batches: 10, batch: 500, concurrency: 16, json: false };
  const num = (v: string | undefined, max: number): number => Math.max(1, Math.min(max, Number.parseInt(v ?? '', 10) || 1));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--target') {
      const v = argv[++i] ?? '';
      const m = /^([^=]+)=([^@]+)@(\d+)$/.exec(v);
      if (m === null) throw new Error(`--target wants NAME=SOCKET@PID, got ${v}`);
      a.targets.push({ name: m[1]!, socket: m[2]!, pid: Number(m[3]) });
    } else if (arg === '--batches') a.batches = num(argv[++i], 100);
    else if (arg === '--batch') a.batch = num(argv[++i], 10_000);
    else if (arg === '--concurrency') a.concurrency = num(argv[++i], 256);
    else if (arg === '--json') a.json = true;
    else throw new Error(`unknown argument ${arg} (expected --target NAME=SOCKET@PID, --batches N, --batch N, --concurrency C, --json)`);
  }
  if (a.targets.length === 0) throw new Error('give at least one --target NAME=SOCKET@PID');
  return a;
}

function cpuMs(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

function pssMb(pid: number): number {
  const m = /Pss:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m === null ? Number.NaN : round(Number(m[1]) / 1024, 1);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const targets: Target[] = args.targets.map((t) => ({ name: t.name, api: new EngineApi(t.socket), pid: t.pid }));
  const rows: { batch: number; system: string; writes_before: number; cpu_us_per_op: number; ops_per_s: number; load1: number }[] = [];
  const created = new Map<string, string[]>(targets.map((t) => [t.name, []]));
  let seq = 0;
  try {
    for (let b = 0; b < args.batches; b++) {
      for (const t of b % 2 === 0 ? targets : [...targets].reverse()) {
        const ids = created.get(t.name)!;
        const c0 = cpuMs(t.pid);
        const r = await timedConcurrent(args.batch, args.concurrency, async (i) => {
          ids.push((await t.api.json<{ ID: string }>('POST', '/configs/create', { Name: `warmup-${process.pid}-${seq++}-${i}`, Data: Buffer.from(`value ${i}`).toString('base64') })).ID);
        });
        rows.push({ batch: b, system: t.name, writes_before: b * args.batch, cpu_us_per_op: round(((cpuMs(t.pid) - c0) * 1000) / args.batch), ops_per_s: round(args.batch / r.seconds), load1: round(loadavg()[0]!, 1) });
      }
      if (!args.json) {
        const line = targets.map((t) => rows.find((r) => r.batch === b && r.system === t.name)!);
        process.stdout.write(`${[String(b), ...line.map((r) => `${r.system} ${r.cpu_us_per_op} µs ${r.ops_per_s}/s`), `load ${line[0]!.load1}`].join('\t')}\n`);
      }
    }
    const pss = targets.map((t) => ({ system: t.name, pss_mb: pssMb(t.pid) }));
    if (args.json) process.stdout.write(`${JSON.stringify({ rows, pss })}\n`);
    else process.stdout.write(`PSS MiB after: ${pss.map((p) => `${p.system} ${p.pss_mb}`).join(', ')}\n`);
  } finally {
    for (const t of targets) {
      for (const id of created.get(t.name)!) await t.api.json('DELETE', `/configs/${id}`).catch(() => undefined);
      t.api.close();
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`warmup: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
