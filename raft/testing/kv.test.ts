// A key-value store replicated by our Raft (in the simulator), used by seeded clients while the
// network is partitioned and healed underneath them. What the clients saw must be linearizable.
// The negative control reads from any node's local state without ReadIndex: under partitions
// that serves stale values, and the checker must say so — which shows it judges real histories.
import { describe, expect, it } from 'vitest';
import { SimCluster } from './sim.js';
import { checkLinearizability, kvModel } from './linearizability.js';
import {
  decodeCommand,
  encodeCommand,
  KvCommandError,
  KvStateMachine,
  runKvWorkload,
  type KvRunResult,
  type KvWorkloadOptions,
  type SimClusterLike,
} from './kv.js';

const IDS = [1, 2, 3, 4, 5];
const WARM_UP_TICKS = 200;

/** A five-node cluster with pre-vote and check-quorum, ticked until it has a leader. */
function cluster(seed: number): SimCluster {
  const sim = new SimCluster({ ids: IDS, seed, electionTick: 10, heartbeatTick: 1, preVote: true, checkQuorum: true });
  for (let i = 0; i < WARM_UP_TICKS && sim.leader() === undefined; i++) {
    sim.tick();
    sim.stabilize();
  }
  expect(sim.leader(), `seed ${seed}: no leader after ${WARM_UP_TICKS} ticks`).toBeDefined();
  return sim;
}

async function run(seed: number, opts: Partial<KvWorkloadOptions>): Promise<KvRunResult> {
  const sim: SimClusterLike = cluster(seed);
  return runKvWorkload(sim, IDS, { seed, clients: 6, keys: 3, steps: 300, readMode: 'log', ...opts });
}

function expectLinearizable(seed: number, r: KvRunResult): void {
  expect(r.violations, `seed ${seed}`).toEqual([]);
  const c = checkLinearizability(kvModel, r.history, { timeBudgetMs: 30_000 });
  expect(c.result, `seed ${seed}: ${c.result === 'illegal' ? c.message : c.result}`).toBe('ok');
}

describe('kv state machine', () => {
  it('folds applied commands in order, skipping empty no-op entries', () => {
    const sm = new KvStateMachine();
    const put = encodeCommand({ opId: 1, clientId: 0, input: { kind: 'put', key: 'a', value: 'x' } });
    const casOk = encodeCommand({ opId: 2, clientId: 1, input: { kind: 'cas', key: 'a', expected: 'x', value: 'y' } });
    const casNo = encodeCommand({ opId: 3, clientId: 1, input: { kind: 'cas', key: 'a', expected: 'x', value: 'z' } });
    const get = encodeCommand({ opId: 4, clientId: 2, input: { kind: 'get', key: 'a' } });
    const log = [new Uint8Array(0), put, casOk];
    sm.catchUp(log);
    expect(sm.get('a')).toBe('y');
    sm.catchUp([...log, new Uint8Array(0), casNo, get]);
    expect(sm.get('a')).toBe('y');
    expect(sm.outcome(1)).toEqual({ kind: 'ok' });
    expect(sm.outcome(2)).toEqual({ kind: 'cas', swapped: true });
    expect(sm.outcome(3)).toEqual({ kind: 'cas', swapped: false });
    expect(sm.outcome(4)).toEqual({ kind: 'value', value: 'y' });
    expect(sm.outcome(5)).toBeUndefined();
    expect(sm.appliedEntries).toBe(6);
  });

  it('refuses entries that are not commands, a replayed op, and a shrinking applied list', () => {
    expect(() => decodeCommand(new TextEncoder().encode('not json'))).toThrow(KvCommandError);
    expect(() => decodeCommand(new TextEncoder().encode('{"opId":1}'))).toThrow(/not a KV command/);
    const put = encodeCommand({ opId: 1, clientId: 0, input: { kind: 'put', key: 'a', value: 'x' } });
    expect(() => new KvStateMachine().catchUp([put, put])).toThrow(/applied twice/);
    const sm = new KvStateMachine();
    sm.catchUp([put]);
    expect(() => sm.catchUp([])).toThrow(/shrank/);
  });
});

describe('kv over raft: client histories are linearizable', () => {
  it('completes every operation when nothing fails', async () => {
    const seed = 11;
    const r = await run(seed, { faultProbability: 0, steps: 150 });
    expectLinearizable(seed, r);
    expect(r.stats.indeterminate).toBe(0);
    expect(r.stats.completed).toBeGreaterThan(100);
    expect(r.stats.leaderTerms).toBe(1);
  });

  for (const seed of [1, 2, 3]) {
    it(`reads through the log, under partitions (seed ${seed})`, async () => {
      const r = await run(seed, { readMode: 'log' });
      expectLinearizable(seed, r);
      // The run really went through leader changes and still got work done.
      expect(r.stats.faults).toBeGreaterThan(3);
      expect(r.stats.leaderTerms).toBeGreaterThan(1);
      expect(r.stats.completed).toBeGreaterThan(200);
    });
  }

  for (const seed of [4, 5, 6]) {
    it(`reads through ReadIndex, under partitions (seed ${seed})`, async () => {
      const r = await run(seed, { readMode: 'readIndex' });
      expectLinearizable(seed, r);
      expect(r.stats.faults).toBeGreaterThan(3);
      expect(r.stats.leaderTerms).toBeGreaterThan(1);
      expect(r.history.some((o) => o.input.kind === 'get')).toBe(true);
    });
  }

  for (const seed of [7, 8]) {
    it(`mixed reads, partitions and crash/restart of a minority (seed ${seed})`, async () => {
      const r = await run(seed, { readMode: 'mixed', crashProbability: 0.03 });
      expectLinearizable(seed, r);
      expect(r.stats.crashes).toBeGreaterThan(0);
    });
  }

  for (const seed of [12, 13]) {
    it(`leadership handed over while clients write and read (seed ${seed})`, async () => {
      const r = await run(seed, { readMode: 'mixed', transferProbability: 0.05, faultProbability: 0.04 });
      expectLinearizable(seed, r);
      expect(r.stats.transfers).toBeGreaterThan(5);
      expect(r.stats.leaderTerms).toBeGreaterThan(3);
    });
  }

  for (const seed of [9, 10]) {
    it(`impatient clients leave writes indeterminate, which then take effect late (seed ${seed})`, async () => {
      // Clients give up after 2 steps while short partitions and crashes hold commits back, so
      // many writes commit after their client stopped waiting: they go in with ret = Infinity.
      const r = await run(seed, { readMode: 'mixed', opTimeoutSteps: 2, maxFaultSteps: 12, faultProbability: 0.15, crashProbability: 0.02 });
      expectLinearizable(seed, r);
      expect(r.stats.indeterminate).toBeGreaterThan(10);
    });
  }
});

describe('kv over raft: negative controls (broken client paths must be caught)', () => {
  async function verdicts(seeds: readonly number[], opts: Partial<KvWorkloadOptions>): Promise<string[]> {
    const out: string[] = [];
    for (const seed of seeds) {
      const r = await run(seed, opts);
      expect(r.violations, `seed ${seed}`).toEqual([]);
      out.push(checkLinearizability(kvModel, r.history, { timeBudgetMs: 30_000 }).result);
    }
    return out;
  }

  it('finds stale reads when reads skip ReadIndex and go to any node', async () => {
    expect(await verdicts([1, 2, 3], { readMode: 'unsafe-local' })).toContain('illegal');
  });

  it('finds lost writes when a put is acknowledged once appended instead of applied', async () => {
    expect(await verdicts([1, 2, 3], { readMode: 'log', writeAck: 'unsafe-appended' })).toContain('illegal');
  });
});
