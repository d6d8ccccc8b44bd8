// One manager of the bench cluster in its own process (the real Manager: Raft, CA, gRPC + mutual
// TLS on loopback, Control + Dispatcher, orchestrators and scheduler while it leads).
//
//   node --import tsx bench/cluster/manager-proc.ts '<json ManagerProcSpec>'
//
// Ops: tokens, leading, control {method, args}, drain-managers, nodes, task-count, progress {serviceId},
// stats, heap {snapshot?}, profile-start, profile-stop {file}, close.
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

import { pino } from 'pino';

import { Manager } from '../../manager/manager.js';
import { clusterOf } from '../../manager/membership/cluster-state.js';
import { byServiceId } from '../../manager/store/index.js';
import { ResyncRequiredError } from '../../manager/store/errors.js';
import type { MemoryStore } from '../../manager/store/memory-store.js';
import type { StoreWatch } from '../../manager/store/watch.js';
import { cpuMs, Profiler, rssMb, sendToParent, serveParent, threadCpu, type ThreadCpu } from './ipc.js';
import { countProgress, ProgressTally, type Progress } from './stats.js';

export type ManagerProcSpec =
  | { readonly mode: 'init'; readonly dataRoot: string; readonly heartbeatPeriodMs: number }
  | { readonly mode: 'join'; readonly dataRoot: string; readonly heartbeatPeriodMs: number; readonly remoteAddr: string; readonly token: string };

export interface ManagerProcInfo {
  readonly nodeId: string;
  readonly addr: string;
  readonly pid: number;
}

export interface ManagerStats {
  readonly rss_mb: number;
  readonly heap_mb: number;
  readonly cpu_ms: number;
  readonly leader: boolean;
  readonly heartbeats: number;
  readonly sessions: number;
  readonly writer_commits: number;
  readonly writer_items: number;
  readonly store_version: number;
  /** CPU ms of this process's threads (Linux /proc): the main thread and all the others (libuv's pool: LevelDB, fsync; V8's GC and compiler helpers), user and system. */
  readonly threads: ThreadCpu;
  /** Store entries and actions applied, and open store watches. */
  readonly store_entries: number;
  readonly store_actions: number;
  readonly store_bytes: number;
  readonly store_watches: number;
  /** The leader's loops: scheduler passes (and how many of them waited for a creation burst), replicated orchestrator passes, bursts. */
  readonly scheduler_passes: number;
  readonly scheduler_held_passes: number;
  readonly replicated_passes: number;
  readonly creation_bursts: number;
  /** Tasks the replicated orchestrator created already ASSIGNED (placed by the scheduler's Placement). */
  readonly placed_at_creation: number;
}

/**
 * What holds this process's memory (SHOAL_BENCH_HEAP=1 in main.ts): RSS, and V8's heap by space
 * before and after a full GC, so "retained" (live after GC) can be told from "not collected yet".
 * With `snapshot`, a heap snapshot is written there too (slow for a big heap).
 */
function heapReport(snapshot: string | undefined): Record<string, unknown> {
  const spaces = (): Record<string, number> =>
    Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, Math.round(s.space_used_size / 1048576)]));
  const mb = (n: number): number => Math.round(n / 1048576);
  const before = { rss_mb: mb(process.memoryUsage().rss), heap_total_mb: mb(v8.getHeapStatistics().total_heap_size), used_mb: spaces() };
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  const h = v8.getHeapStatistics();
  const mu = process.memoryUsage();
  const after = { rss_mb: mb(mu.rss), heap_total_mb: mb(h.total_heap_size), heap_used_mb: mb(h.used_heap_size), external_mb: mb(mu.external), array_buffers_mb: mb(mu.arrayBuffers), used_mb: spaces() };
  if (snapshot !== undefined) v8.writeHeapSnapshot(snapshot);
  // Outside V8's heap: anonymous memory (malloc: TLS, HTTP/2, LevelDB, V8's code and zones) and file-backed pages.
  let proc: Record<string, number> = {};
  try {
    const st = readFileSync('/proc/self/status', 'utf8');
    proc = Object.fromEntries([...st.matchAll(/^(RssAnon|RssFile|VmHWM|Threads):\s+(\d+)/gm)].map((m) => [m[1]!, m[1] === 'Threads' ? Number(m[2]) : Math.round(Number(m[2]) / 1024)]));
  } catch {
    // no /proc
  }
  return { before, after_gc: after, proc_mb: proc };
}

/**
 * The progress of one service's tasks, kept from a store watch: the bench polls it every 100 ms
 * and a re-count of 10,000 tasks at each poll was 3 % of the leader's CPU (measurement, not
 * Shoal). The first poll counts, later ones read only the changes since; a watch that lost
 * continuity counts again; and a tally that says "all running" is confirmed by a re-count.
 */
class ProgressFollower {
  private watch: StoreWatch | null = null;
  private store: MemoryStore | null = null;
  private serviceId = '';
  private tally = new ProgressTally();

  read(store: MemoryStore, serviceId: string): Progress {
    if (this.watch === null || this.store !== store || this.serviceId !== serviceId) this.restart(store, serviceId);
    try {
      for (let ev = this.watch!.poll(); ev !== null; ev = this.watch!.poll()) {
        if (ev.kind !== 'task') continue;
        if (ev.action === 'delete') {
          if (ev.object.ServiceID === serviceId) this.tally.remove(ev.object);
          continue;
        }
        if (ev.old !== undefined && ev.old.ServiceID === serviceId) this.tally.remove(ev.old);
        if (ev.object.ServiceID === serviceId) this.tally.add(ev.object);
      }
    } catch (err) {
      if (!(err instanceof ResyncRequiredError)) throw err;
      this.restart(store, serviceId);
    }
    const p = this.tally.progress;
    if (p.wanted > 0 && p.running >= p.wanted) return countProgress(store.find('task', byServiceId(serviceId)));
    return p;
  }

  close(): void {
    this.watch?.close();
    this.watch = null;
  }

  private restart(store: MemoryStore, serviceId: string): void {
    this.close();
    const [tally, watch] = store.viewAndWatch((tx) => {
      const t = new ProgressTally();
      for (const task of tx.find('task', byServiceId(serviceId))) t.add(task);
      return t;
    }, { kinds: ['task'] });
    this.tally = tally;
    this.watch = watch;
    this.store = store;
    this.serviceId = serviceId;
  }
}

async function start(spec: ManagerProcSpec): Promise<Manager> {
  const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' }, pino.destination(2));
  const common = {
    dataRoot: spec.dataRoot,
    listenAddr: '127.0.0.1:0',
    logger,
    // Election after 5 s without a leader (Docker's is 10 s): a machine shared with other work
    // can starve a process for over a second, and a needless election would split the run.
    tickMs: 100,
    electionTick: 50,
    heartbeatTick: 1,
    leaderServices: { dispatcher: { heartbeatPeriodMs: spec.heartbeatPeriodMs } },
  };
  return spec.mode === 'init' ? Manager.init(common) : Manager.join({ ...common, remoteAddr: spec.remoteAddr, token: spec.token });
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as ManagerProcSpec;
  let m: Manager;
  try {
    m = await start(spec);
  } catch (err) {
    sendToParent({ type: 'failed', error: (err as Error).stack ?? String(err) });
    process.disconnect?.();
    return;
  }
  const profiler = new Profiler();
  const progress = new ProgressFollower();

  const handle = async (op: string, args: Readonly<Record<string, unknown>>): Promise<unknown> => {
    switch (op) {
      case 'tokens':
        return clusterOf(m.store)?.JoinTokens ?? null;
      case 'leading':
        return m.isLeader && (m.leaderServices?.running ?? false);
      case 'control': {
        const api = m.leaderServices?.control;
        if (api == null) throw new Error('this manager runs no control API');
        const fn = (api as unknown as Record<string, (...a: unknown[]) => unknown>)[String(args['method'])];
        if (typeof fn !== 'function') throw new Error(`no control method ${String(args['method'])}`);
        return await fn.apply(api, (args['args'] as unknown[] | undefined) ?? []);
      }
      case 'drain-managers': {
        // No agent runs on the managers here: keep tasks off them (docker node update --availability drain).
        const api = m.leaderServices?.control;
        if (api == null) throw new Error('this manager runs no control API');
        // Membership may update a node meanwhile (out of sequence): re-read and retry, bounded.
        for (let attempt = 0; attempt < 50; attempt++) {
          const todo = m.store.find('node').filter((n) => n.Spec.Role === 'manager' && n.Spec.Availability !== 'drain');
          if (todo.length === 0) return null;
          for (const n of todo) await api.updateNode(n.ID, n.Version.Index, { ...n.Spec, Availability: 'drain' }).catch(() => undefined);
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error('could not drain the managers');
      }
      case 'nodes': {
        const nodes = m.store.find('node');
        return { workersReady: nodes.filter((n) => n.Spec.Role === 'worker' && n.Status.State === 'ready').length, total: nodes.length };
      }
      case 'task-count':
        // Tasks in the store, whatever their service (the warm-up waits for its tasks to be reaped).
        return m.store.find('task').length;
      case 'progress':
        // Heartbeats come with it: the bench's 100 ms poll needs no 'stats' (which reads /proc).
        return { ...progress.read(m.store, String(args['serviceId'])), version: m.store.version, heartbeats: m.leaderServices?.dispatcher?.heartbeatsHandled ?? 0 };
      case 'stats': {
        const d = m.leaderServices?.dispatcher;
        const st = m.store.stats();
        return {
          rss_mb: rssMb(),
          heap_mb: process.memoryUsage().heapUsed / (1024 * 1024),
          cpu_ms: cpuMs(),
          leader: m.isLeader,
          heartbeats: d?.heartbeatsHandled ?? 0,
          sessions: d?.sessionCount ?? 0,
          writer_commits: d?.writerStats.commits ?? 0,
          writer_items: d?.writerStats.items ?? 0,
          store_version: m.store.version,
          threads: threadCpu(),
          store_entries: st.entriesApplied,
          store_actions: st.actionsApplied,
          store_bytes: st.bytesApplied,
          store_watches: st.watches,
          scheduler_passes: m.leaderServices?.scheduler?.passes ?? 0,
          scheduler_held_passes: m.leaderServices?.scheduler?.heldPasses ?? 0,
          replicated_passes: m.leaderServices?.orchestrators?.replicated.passes ?? 0,
          creation_bursts: m.leaderServices?.orchestrators?.burst.bursts ?? 0,
          placed_at_creation: m.leaderServices?.orchestrators?.replicated.placedAtCreation ?? 0,
        } satisfies ManagerStats;
      }
      case 'heap':
        return heapReport(typeof args['snapshot'] === 'string' ? args['snapshot'] : undefined);
      case 'profile-start':
        await profiler.start();
        return null;
      case 'profile-stop':
        await profiler.stop(String(args['file']));
        return null;
      case 'close':
        progress.close();
        await m.close();
        return null;
      default:
        throw new Error(`unknown op ${op}`);
    }
  };
  serveParent(handle, async () => {
    await m.close().catch(() => undefined);
  });
  sendToParent({ type: 'ready', info: { nodeId: m.nodeId, addr: m.addr, pid: process.pid } satisfies ManagerProcInfo });
}

void main();
