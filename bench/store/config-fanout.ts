// `node --import tsx bench/store/config-fanout.ts [--tree NAME=DIR ...] [--sessions N] [--writes N]
//    [--rounds N] [--json]`
//
// What a config write costs the leader's dispatcher with many nodes connected: one manager (a real
// Raft member with its LevelDB log, as manager/dispatcher/testing/harness.ts builds it), `sessions`
// worker sessions over mTLS gRPC with their assignment streams open (no tasks), then `writes`
// config creates straight into the store at concurrency 16, twice (the first batch warms up, the
// second is measured). The figure is the process's CPU time per write (user + system, all threads):
// Raft, the store and the dispatcher's routing of each config event; the sessions' clients live in
// this process too but receive nothing for a config no task uses. Each tree (a source checkout,
// e.g. a `git worktree` of the code before a change, default: this one) runs in a child process of
// its own, the trees' order alternating between rounds; medians over rounds.
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { median, round } from '../stats.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAX_SESSIONS = 2_000;
const MAX_WRITES = 20_000;
const MAX_ROUNDS = 20;
const CHILD_TIMEOUT_MS = 300_000;
const CONCURRENCY = 16;

interface ChildResult {
  readonly opened: number;
  readonly warm_us_per_write: number;
  readonly us_per_write: number;
}

async function child(root: string, sessions: number, writes: number): Promise<ChildResult> {
  type Harness = typeof import('../../manager/dispatcher/testing/harness.js');
  type Ids = typeof import('../../manager/store/ids.js');
  const { DispatchCluster } = (await import(pathToFileURL(join(root, 'manager/dispatcher/testing/harness.ts')).href)) as Harness;
  const { newId } = (await import(pathToFileURL(join(root, 'manager/store/ids.ts')).href)) as Ids;
  const cluster = await DispatchCluster.start({ size: 1, config: { heartbeatPeriodMs: 600_000 } });
  const closers: (() => void)[] = [];
  try {
    const leader = await cluster.leaderId();
    const store = cluster.stores.rs(leader).store;
    const dispatching = (): boolean => cluster.manager(leader).dispatcher?.leading === true;
    for (let i = 0; i < 400 && !dispatching(); i++) await new Promise((r) => setTimeout(r, 25));
    const addr = cluster.manager(leader).addr;
    let opened = 0;
    for (let i = 0; i < sessions; i++) {
      const c = cluster.client(addr, await cluster.workerIdentity());
      const s = c.session({ sessionId: '', descriptionJson: Buffer.from(JSON.stringify({ Hostname: `fanout-${i}` })) });
      closers.push(() => {
        s.cancel();
        c.close();
      });
      const first = await new Promise<{ sessionId: string }>((res, rej) => {
        s.once('data', res);
        s.once('error', rej);
      });
      s.on('error', () => undefined);
      const a = c.assignments({ sessionId: first.sessionId });
      a.once('data', () => opened++);
      a.on('error', () => undefined);
      closers.push(() => a.cancel());
    }
    // Every node has its (empty) complete set before the writes.
    for (let i = 0; i < 800 && opened < sessions; i++) await new Promise((r) => setTimeout(r, 25));
    const batch = async (): Promise<number> => {
      const c0 = process.cpuUsage();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (let i = next++; i < writes; i = next++) {
            await store.update((tx) => tx.create('config', { Spec: { Name: `fanout-${newId()}`, Data: Buffer.from(`v${i}`).toString('base64') } }));
          }
        }),
      );
      const c1 = process.cpuUsage(c0);
      return (c1.user + c1.system) / writes;
    };
    const warm = await batch();
    const measured = await batch();
    return { opened, warm_us_per_write: warm, us_per_write: measured };
  } finally {
    for (const close of closers) close();
    await cluster.close();
  }
}

function runChild(root: string, sessions: number, writes: number): Promise<ChildResult> {
  return new Promise((res, rej) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(HERE, 'config-fanout.ts'), '--child', root, String(sessions), String(writes)],
      { timeout: CHILD_TIMEOUT_MS, maxBuffer: 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err !== null) return rej(new Error(`config-fanout child (${root}): ${err.message}\n${stderr}`));
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          res(JSON.parse(line) as ChildResult);
        } catch {
          rej(new Error(`config-fanout child (${root}) printed no result: ${stdout}\n${stderr}`));
        }
      },
    );
  });
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === '--child') {
    const r = await child(argv[1]!, Number(argv[2]), Number(argv[3]));
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  }
  const trees: { name: string; root: string }[] = [];
  let sessions = 300;
  let writes = 1000;
  let rounds = 3;
  let json = false;
  const num = (v: string | undefined, max: number): number => Math.max(1, Math.min(max, Number.parseInt(v ?? '', 10) || 1));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--tree') {
      const v = argv[++i] ?? '';
      const eq = v.indexOf('=');
      if (eq <= 0) throw new Error(`--tree wants NAME=DIR, got ${v}`);
      trees.push({ name: v.slice(0, eq), root: resolve(v.slice(eq + 1)) });
    } else if (a === '--sessions') sessions = num(argv[++i], MAX_SESSIONS);
    else if (a === '--writes') writes = num(argv[++i], MAX_WRITES);
    else if (a === '--rounds') rounds = num(argv[++i], MAX_ROUNDS);
    else if (a === '--json') json = true;
    else throw new Error(`unknown argument ${a} (expected --tree NAME=DIR, --sessions N, --writes N, --rounds N, --json)`);
  }
  if (trees.length === 0) trees.push({ name: 'this', root: resolve(HERE, '../..') });
  const got = new Map<string, ChildResult[]>(trees.map((t) => [t.name, []]));
  const loads: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 === 0 ? trees : [...trees].reverse()) {
      const res = await runChild(t.root, sessions, writes);
      if (res.opened < sessions) throw new Error(`${t.name}: only ${res.opened} of ${sessions} sessions got their assignment set`);
      got.get(t.name)!.push(res);
      loads.push(loadavg()[0]!);
      if (!json) process.stderr.write(`round ${r + 1}/${rounds} ${t.name}: ${Math.round(res.us_per_write)} µs CPU per write\n`);
    }
  }
  const rows = trees.map((t) => {
    const list = got.get(t.name)!;
    return {
      bench: 'config-fanout',
      system: t.name,
      nodes: sessions,
      concurrency: CONCURRENCY,
      ops: writes,
      rounds: list.length,
      cpu_us_per_write: round(median(list.map((x) => x.us_per_write)), 0),
      runs_us_per_write: list.map((x) => Math.round(x.us_per_write)),
      load1: round(median(loads), 2),
    };
  });
  if (json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  for (const x of rows) process.stdout.write(`${x.system}: ${x.nodes} nodes, ${x.ops} config creates at c=${x.concurrency}: ${x.cpu_us_per_write} µs CPU per write (runs ${x.runs_us_per_write.join(', ')})\n`);
  process.stdout.write(`medians over ${rounds} round(s); load average (1 min, median): ${round(median(loads), 2)}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`config-fanout: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
