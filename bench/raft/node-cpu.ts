// `node --import tsx bench/raft/node-cpu.ts [--proposals N] [--concurrency C] [--payload BYTES] [--runs R] [--prof FILE]`
//
// CPU time per proposal of one RaftNode (single voter, DurableLog with fsync, no peers) under C
// concurrent proposers — the Raft part of a control-API write on a one-manager swarm, without
// HTTP or the store. Prints, per run, proposals/s, process CPU (user + system, all threads) and
// the main thread's CPU per proposal, entries per synced save and ms per save; then medians.
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { RaftNode } from '../../raft/node.js';
import type { Transport } from '../../raft/transport/transport.js';
import { median, round } from '../stats.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : Math.max(1, Number.parseInt(process.argv[i + 1] ?? '', 10) || dflt);
};
const PROPOSALS = Math.min(200_000, arg('--proposals', 20_000));
const CONCURRENCY = Math.min(1024, arg('--concurrency', 16));
const PAYLOAD = Math.min(1 << 20, arg('--payload', 300));
const RUNS = Math.min(20, arg('--runs', 3));
const profIdx = process.argv.indexOf('--prof');
const PROF = profIdx < 0 ? undefined : process.argv[profIdx + 1];

const nullTransport: Transport = { send: () => undefined, onMessage: () => undefined, onReport: () => undefined, close: async () => undefined };

function threadCpuMs(tid?: number): number {
  const f = readFileSync(tid === undefined ? '/proc/self/stat' : `/proc/self/task/${tid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10;
}

async function waitLeader(node: RaftNode): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (node.status().role === 'leader') return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no leader after 5 s');
}

interface RunFigures {
  readonly ops: number;
  readonly cpu: number;
  readonly main: number;
  readonly perSave: number;
  readonly saveMs: number;
}

async function oneRun(run: number): Promise<RunFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'raft-node-cpu-'));
  let node: RaftNode;
  try {
    node = await RaftNode.open({ id: '1' as never, peers: ['1' as never], dir, dek: randomBytes(32), transport: nullTransport, apply: () => undefined, tickMs: 10, logger: pino({ level: 'silent' }) });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  try {
    await waitLeader(node);
    const payload = randomBytes(PAYLOAD);
    const batch = async (count: number): Promise<void> => {
      let next = 0;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next++ < count) await node.propose(payload);
      }));
    };
    await batch(Math.min(5000, PROPOSALS)); // JIT warm-up
    const inspector = PROF !== undefined && run === 0 ? new Session() : undefined;
    if (inspector !== undefined) {
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.setSamplingInterval', { interval: 100 });
      await inspector.post('Profiler.start');
    }
    const m0 = node.metrics();
    const c0 = threadCpuMs();
    const t0 = threadCpuMs(process.pid);
    const w0 = performance.now();
    await batch(PROPOSALS);
    const secs = (performance.now() - w0) / 1000;
    const cpu = threadCpuMs() - c0;
    const main = threadCpuMs(process.pid) - t0;
    const m1 = node.metrics();
    if (inspector !== undefined) {
      const { profile } = await inspector.post('Profiler.stop');
      writeFileSync(PROF!, JSON.stringify(profile));
      inspector.disconnect();
    }
    const saves = m1.syncedSaves - m0.syncedSaves;
    return { ops: PROPOSALS / secs, cpu: (cpu * 1000) / PROPOSALS, main: (main * 1000) / PROPOSALS, perSave: (m1.entriesSaved - m0.entriesSaved) / saves, saveMs: (m1.syncedSaveMs - m0.syncedSaveMs) / saves };
  } finally {
    await node.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const rows: RunFigures[] = [];
for (let r = 0; r < RUNS; r++) rows.push(await oneRun(r));
const m = (f: (x: RunFigures) => number): number => round(median(rows.map(f)), 1);
process.stdout.write(`proposals ${PROPOSALS} at c=${CONCURRENCY}, ${PAYLOAD} B; runs: ${rows.map((x) => `${round(x.cpu, 1)}`).join(' / ')} µs CPU\n`);
process.stdout.write(`median: ${m((x) => x.ops)} proposals/s, ${m((x) => x.cpu)} µs CPU/proposal (main thread ${m((x) => x.main)}), ${m((x) => x.perSave)} entries/save, ${m((x) => x.saveMs)} ms/save\n`);
