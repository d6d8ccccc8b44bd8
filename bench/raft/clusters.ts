// Starting and stopping the two 3-member clusters the benchmark compares, both on loopback
// with fsync on and fresh temp data dirs: Shoal members (member.ts, one process each) and
// Debian's etcd 3.4 started exactly as /work/shared/reference/raft.md §4.2 says, on ports
// picked at run time.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { ShoalClient } from './client-protocol.js';
import type { MemberConfig } from './member.js';
import { ChildExitedError, freePorts, makeTempDir, startChild, stopChild, type Spawned } from './procs.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const START_LIMIT_MS = 30_000;
const POLL_MS = 50;

/** The leader's durable-write counters (cumulative), to see how well each system batches. */
export interface FsyncCounters {
  readonly fsyncs: number;
  readonly fsyncMs: number;
  readonly entries: number;
}

export interface Cluster {
  readonly system: 'shoal' | 'etcd';
  /** Client port of the current leader on 127.0.0.1. */
  readonly leaderPort: number;
  readonly dir: string;
  leaderFsyncs(): Promise<FsyncCounters>;
  /** CPU time (user + system, ms) the member processes have used so far, from /proc. */
  serverCpuMs(): number;
  stop(): Promise<void>;
}

const CLOCK_TICKS_PER_S = 100;

/** utime + stime of a process in ms, from /proc/<pid>/stat (0 when it is gone). */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a value; fails when a member exits or after START_LIMIT_MS. */
async function waitFor<T>(what: string, members: readonly Spawned[], probe: () => Promise<T | undefined>): Promise<T> {
  const start = performance.now();
  for (;;) {
    for (const m of members) {
      if (m.child.exitCode !== null) throw new ChildExitedError(`member pid ${m.pid}`, m.child.exitCode, m.logFile);
    }
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (performance.now() - start > START_LIMIT_MS) throw new Error(`timed out after ${START_LIMIT_MS} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

export interface ShoalClusterOptions {
  readonly tickMs: number;
  /** Directory for V8 CPU profiles of the members, or null. */
  readonly cpuProfDir: string | null;
}

export async function startShoal(opts: ShoalClusterOptions): Promise<Cluster> {
  const dir = await makeTempDir('shoal-bench-raft-');
  const ports = await freePorts(6);
  const peers = [1, 2, 3].map((id, i) => ({ id, port: ports[i]! }));
  const dekHex = randomBytes(32).toString('hex');
  const members: Spawned[] = [];
  const readyLines: Promise<void>[] = [];
  for (const [i, p] of peers.entries()) {
    const cfg: MemberConfig = { id: p.id, dir: path.join(dir, `m${p.id}`), raftPort: p.port, clientPort: ports[3 + i]!, peers, tickMs: opts.tickMs };
    const nodeArgs = ['--import', 'tsx'];
    // Default profile names (CPU.<date>.<pid>.<thread>…): tsx's loader thread writes one too.
    if (opts.cpuProfDir !== null) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`);
    const s = startChild(`shoal member ${p.id}`, process.execPath, [...nodeArgs, path.join(HERE, 'member.ts'), JSON.stringify(cfg)], path.join(dir, `m${p.id}.log`), {
      pipeStdout: true,
      cwd: REPO_ROOT,
      env: { SHOAL_BENCH_DEK: dekHex },
    });
    members.push(s);
    readyLines.push(
      new Promise<void>((resolve) => {
        let buf = '';
        s.child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString('utf8');
          if (buf.includes('ready\n')) resolve();
        });
      }),
    );
  }
  const stop = async (): Promise<void> => {
    await Promise.allSettled(members.map((m) => stopChild(m)));
  };
  try {
    await waitFor('shoal members to listen', members, async () => {
      const done = await Promise.race([Promise.all(readyLines).then(() => true), sleep(POLL_MS).then(() => undefined)]);
      return done;
    });
    const clients = await Promise.all(peers.map((_, i) => ShoalClient.connect(ports[3 + i]!)));
    try {
      const leaderIdx = await waitFor('a shoal leader', members, async () => {
        const st = await Promise.all(clients.map((c) => c.status()));
        const leaders = st.filter((s) => s.role === 'leader');
        if (leaders.length !== 1 || !st.every((s) => s.leader === leaders[0]!.id)) return undefined;
        // The new leader's no-op must be applied before the load starts.
        if (leaders[0]!.applied < 2) return undefined;
        return st.indexOf(leaders[0]!);
      });
      const leaderPort = ports[3 + leaderIdx]!;
      const leaderFsyncs = async (): Promise<FsyncCounters> => {
        const c = await ShoalClient.connect(leaderPort);
        try {
          const m = (await c.status()).metrics;
          return { fsyncs: m.syncedSaves, fsyncMs: m.syncedSaveMs, entries: m.entriesSaved };
        } finally {
          c.close();
        }
      };
      const serverCpuMs = (): number => members.reduce((a, m) => a + processCpuMs(m.pid), 0);
      return { system: 'shoal', leaderPort, dir, stop, leaderFsyncs, serverCpuMs };
    } finally {
      for (const c of clients) c.close();
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Installs Debian's etcd-server when the `etcd` command is missing (the bench needs it, `npm test` does not). */
export function ensureEtcd(): string {
  const found = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (found.status === 0) return found.stdout.split('\n')[0]!.trim();
  process.stderr.write('bench: etcd not found; installing Debian package etcd-server\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', 'etcd-server'], { stdio: ['ignore', 'inherit', 'inherit'], env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'inherit', 'inherit'], env });
    r = spawnSync('apt-get', ['install', '-y', '-qq', 'etcd-server'], { stdio: ['ignore', 'inherit', 'inherit'], env });
  }
  const again = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (again.status !== 0) throw new Error('etcd is not installed and `apt-get install etcd-server` failed (need root and a Debian package mirror)');
  return again.stdout.split('\n')[0]!.trim();
}

export async function startEtcd(): Promise<Cluster> {
  const dir = await makeTempDir('etcd-bench-raft-');
  const ports = await freePorts(9);
  const m = [1, 2, 3].map((i) => ({ name: `m${i}`, client: ports[(i - 1) * 3]!, peer: ports[(i - 1) * 3 + 1]!, metrics: ports[(i - 1) * 3 + 2]! }));
  const initialCluster = m.map((x) => `${x.name}=http://127.0.0.1:${x.peer}`).join(',');
  const members: Spawned[] = [];
  for (const x of m) {
    const args = [
      '--name', x.name,
      '--data-dir', path.join(dir, x.name),
      '--listen-client-urls', `http://127.0.0.1:${x.client}`,
      '--advertise-client-urls', `http://127.0.0.1:${x.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${x.peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${x.peer}`,
      '--listen-metrics-urls', `http://127.0.0.1:${x.metrics}`,
      '--initial-cluster', initialCluster,
      '--initial-cluster-token', 'bench-cluster',
      '--initial-cluster-state', 'new',
    ];
    members.push(startChild(`etcd ${x.name}`, 'etcd', args, path.join(dir, `${x.name}.log`)));
  }
  const stop = async (): Promise<void> => {
    await Promise.allSettled(members.map((s) => stopChild(s)));
  };
  try {
    const clients = m.map((x) => new Etcd3({ hosts: `http://127.0.0.1:${x.client}`, dialTimeout: 1000 }));
    try {
      const leaderIdx = await waitFor('an etcd leader', members, async () => {
        const st = await Promise.all(clients.map((c) => c.maintenance.status()));
        const leader = st[0]!.leader;
        if (leader === '0' || !st.every((s) => s.leader === leader)) return undefined;
        const idx = st.findIndex((s) => s.header.member_id === leader);
        return idx >= 0 ? idx : undefined;
      });
      const metricsUrl = `http://127.0.0.1:${m[leaderIdx]!.metrics}/metrics`;
      const leaderFsyncs = async (): Promise<FsyncCounters> => {
        const text = await (await fetch(metricsUrl)).text();
        const metric = (name: string): number => {
          const line = text.split('\n').find((l) => l.startsWith(`${name} `));
          return line === undefined ? NaN : Number(line.slice(name.length + 1));
        };
        return {
          fsyncs: metric('etcd_disk_wal_fsync_duration_seconds_count'),
          fsyncMs: metric('etcd_disk_wal_fsync_duration_seconds_sum') * 1000,
          entries: metric('etcd_server_proposals_committed_total'),
        };
      };
      const serverCpuMs = (): number => members.reduce((a, x) => a + processCpuMs(x.pid), 0);
      return { system: 'etcd', leaderPort: m[leaderIdx]!.client, dir, stop, leaderFsyncs, serverCpuMs };
    } finally {
      for (const c of clients) c.close();
    }
  } catch (err) {
    await stop();
    throw err;
  }
}
