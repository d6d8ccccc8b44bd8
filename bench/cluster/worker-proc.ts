// A worker process of the bench: `count` simulated nodes, each a real Agent (its own worker
// certificate from the CA join flow with the worker token, its own LevelDB, its own gRPC + mutual
// TLS session to the leader's dispatcher) over a SimExecutor that only pretends to run tasks.
//
//   node --import tsx bench/cluster/worker-proc.ts '<json WorkerProcSpec>'
//
// Ops: stats, started (the executors' started/stopped counts only), profile-start, profile-stop {file}, close.
import path from 'node:path';

import { pino } from 'pino';

import { joinCluster } from '../../ca/join.js';
import type { NodeIdentity } from '../../ca/identity.js';
import { Agent, type AgentCounters } from '../../worker/agent/index.js';
import { cpuMs, Profiler, rssMb, sendToParent, serveParent, threadCpu } from './ipc.js';
import { newSimCounters, SimExecutor } from './sim-executor.js';

export interface WorkerProcSpec {
  readonly index: number;
  readonly count: number;
  /** Manager addresses every agent starts with (the leader first). */
  readonly managers: readonly string[];
  /** Managers whose CA issues the certificates: node i joins through joinVia[i % n]. */
  readonly joinVia: readonly string[];
  readonly token: string;
  readonly baseDir: string;
  /** Joins (key + CSR + certificate) in flight at once. */
  readonly joinConcurrency: number;
  /** Agents starting (up to their first complete assignment set) at once. */
  readonly startConcurrency: number;
}

const SESSION_WAIT_MS = 120_000;

export interface WorkerProcStats {
  readonly agents: number;
  readonly sessions: number;
  /** Sessions the agents established so far, reconnections included (each a TLS handshake and a complete assignment set). */
  readonly sessions_established: number;
  readonly prepared: number;
  readonly started: number;
  readonly stopped: number;
  readonly removed: number;
  readonly rss_mb: number;
  readonly cpu_ms: number;
  /** The agents' counters summed (heartbeats, status calls and items, assignment messages, LevelDB batches and ops). */
  readonly agent: AgentCounters;
  /** CPU ms (user + system) of the main thread and of all the others (V8's compiler and GC threads, libuv's pool: LevelDB). */
  readonly threads: { readonly main_ms: number; readonly other_ms: number };
}

/** CPU ms (user + system) of the main thread and of all the others. */
function threadMs(): { main_ms: number; other_ms: number } {
  const t = threadCpu();
  return { main_ms: t.main_user_ms + t.main_sys_ms, other_ms: t.other_user_ms + t.other_sys_ms };
}

function sumCounters(agents: readonly Agent[]): AgentCounters {
  const sum = { heartbeats: 0, statusCalls: 0, statusItems: 0, assignmentMessages: 0, assignmentItems: 0, dbBatches: 0, dbOps: 0 };
  for (const a of agents) for (const [k, v] of Object.entries(a.counters) as [keyof AgentCounters, number][]) sum[k] += v;
  return sum;
}

/** Runs `fn` over `items` with at most `limit` in flight; results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(lanes);
  return out;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as WorkerProcSpec;
  const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' }, pino.destination(2));
  const counters = newSimCounters();
  const agents: Agent[] = [];
  let closing: Promise<void> | null = null;
  const closeAll = (): Promise<void> => {
    closing ??= Promise.allSettled(agents.map((a) => a.close())).then(() => undefined);
    return closing;
  };
  try {
    const slots = Array.from({ length: spec.count }, (_, i) => i);
    const identities = await mapLimit(slots, spec.joinConcurrency, (i): Promise<NodeIdentity> =>
      joinCluster({ address: spec.joinVia[(i + spec.index) % spec.joinVia.length]!, token: spec.token, callTimeoutMs: 60_000 }),
    );
    // Agents start a few at a time, each counted once its session delivered the complete set:
    // a thousand TLS handshakes at once on a loaded leader would delay heartbeats past the grace period.
    await mapLimit(slots, spec.startConcurrency, async (i) => {
      const agent = await Agent.start({
        dataRoot: path.join(spec.baseDir, `n${i}`),
        identity: identities[i]!,
        managers: spec.managers,
        executor: new SimExecutor(counters),
        description: {
          Hostname: `sim-${spec.index}-${i}`,
          Platform: { OS: 'linux', Architecture: 'x86_64' },
          Resources: { NanoCPUs: 4e9, MemoryBytes: 8 * 1024 ** 3 },
          Engine: { EngineVersion: 'shoal-bench-sim' },
        },
        logger,
        callTimeoutMs: 30_000,
        // SHOAL_BENCH_AGENT_UNARY=1: heartbeats and statuses as unary calls (A/B against NodeStream).
        ...(process.env['SHOAL_BENCH_AGENT_UNARY'] === '1' ? { nodeStream: false } : {}),
      });
      agents.push(agent);
      const deadline = performance.now() + SESSION_WAIT_MS;
      while (agent.sessionsEstablished === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (agent.sessionsEstablished === 0) throw new Error(`agent sim-${spec.index}-${i} had no session after ${SESSION_WAIT_MS} ms`);
    });
  } catch (err) {
    await closeAll();
    sendToParent({ type: 'failed', error: (err as Error).stack ?? String(err) });
    process.disconnect?.();
    return;
  }

  const profiler = new Profiler();
  serveParent(async (op, args) => {
    switch (op) {
      case 'profile-start':
        await profiler.start();
        return null;
      case 'profile-stop':
        await profiler.stop(String(args['file']));
        return null;
      case 'started':
        // The bench's progress poll (every 100 ms while converging): two numbers, nothing summed.
        return { started: counters.started, stopped: counters.stopped };
      case 'stats': {
        return {
          agents: agents.length,
          sessions: agents.filter((a) => a.manager !== null).length,
          sessions_established: agents.reduce((n, a) => n + a.sessionsEstablished, 0),
          ...counters,
          rss_mb: rssMb(),
          cpu_ms: cpuMs(),
          agent: sumCounters(agents),
          threads: threadMs(),
        } satisfies WorkerProcStats;
      }
      case 'close':
        await closeAll();
        return null;
      default:
        throw new Error(`unknown op ${op}`);
    }
  }, closeAll);
  sendToParent({ type: 'ready', info: { pid: process.pid, agents: agents.length } });
}

void main();
