// One seeded randomized simulation: a random mix of ticks, proposals, chaotic deliveries
// (drop, delay, reorder, duplicate), partitions, crash/restart, leader transfers, compaction and
// membership changes, with the safety invariants checked after every step and liveness checked
// after healing. The same seed replays exactly.
import { seededRandom } from '../prng.js';
import type { Random } from '../prng.js';
import type { NodeId } from '../types.js';
import { SimCluster } from './sim.js';

export interface RandomRunOptions {
  readonly steps?: number;
}

export interface RandomRunResult {
  readonly seed: number;
  readonly nodes: number;
  readonly committed: number;
  readonly elections: number;
  readonly livenessTicks: number;
}

export class LivenessViolation extends Error {
  readonly code = 'ERR_RAFT_LIVENESS';
}

/** Ticks allowed, after healing everything, for a leader to emerge and a proposal to commit everywhere. */
const LIVENESS_TICK_BOUND = 400;

export function randomRun(seed: number, options: RandomRunOptions = {}): RandomRunResult {
  const rand = seededRandom(`run-${seed}`);
  const n = pick(rand, [3, 3, 5]);
  let ids: NodeId[] = Array.from({ length: n }, (_, i) => i + 1);
  const sim = new SimCluster({
    ids,
    seed,
    electionTick: 10,
    heartbeatTick: 1,
    preVote: rand() < 0.75,
    checkQuorum: rand() < 0.75,
    snapshotEvery: pick(rand, [0, 8, 25]),
    snapshotKeep: pick(rand, [0, 3]),
    maxInflightMsgs: pick(rand, [2, 64]),
    maxSizePerMsg: pick(rand, [64, 64 * 1024]),
  });
  const steps = options.steps ?? 250;
  const enc = new TextEncoder();
  let nextId = n + 1;
  const leaders = new Set<string>();

  for (let step = 0; step < steps; step++) {
    const live = ids.filter((id) => sim.isAlive(id));
    const dead = ids.filter((id) => !sim.isAlive(id));
    const r = rand();
    if (r < 0.35) {
      sim.tick();
    } else if (r < 0.4) {
      if (live.length > 0) sim.tick(pick(rand, live));
    } else if (r < 0.58) {
      const l = sim.leader();
      const target = l !== undefined && rand() < 0.85 ? l : pick(rand, ids);
      sim.propose(target, enc.encode(`${seed}:${step}`));
    } else if (r < 0.8) {
      sim.deliver({ reorder: rand() < 0.5, delayP: 0.15, duplicateP: 0.03 });
      sim.processAllReady();
    } else if (r < 0.82) {
      const shuffled = shuffle(ids, rand);
      const cutAt = 1 + Math.floor(rand() * (shuffled.length - 1));
      sim.partition(shuffled.slice(0, cutAt), shuffled.slice(cutAt));
    } else if (r < 0.84) {
      sim.isolate(pick(rand, ids));
    } else if (r < 0.88) {
      sim.heal();
    } else if (r < 0.9) {
      sim.dropRate(pick(rand, ids), pick(rand, ids), rand() * 0.5);
    } else if (r < 0.92) {
      if (live.length > 1) sim.crash(pick(rand, live));
    } else if (r < 0.95) {
      if (dead.length > 0) sim.restart(pick(rand, dead));
    } else if (r < 0.96) {
      const l = sim.leader();
      if (l !== undefined) sim.transferLeader(l, pick(rand, ids));
    } else if (r < 0.97) {
      if (live.length > 0) sim.compact(pick(rand, live));
    } else if (r < 0.975) {
      if (ids.length < 6) {
        const id = nextId++;
        if (sim.addNode(id)) ids = [...ids, id];
        else if (sim.isAlive(id)) ids = [...ids, id];
      }
    } else if (r < 0.98) {
      const l = sim.leader();
      const voters = l !== undefined ? sim.status(l).voters : [];
      if (voters.length > 3) {
        const victim = pick(rand, voters);
        if (sim.removeNode(victim)) ids = ids.filter((id) => id !== victim);
      }
    } else {
      sim.stabilize();
    }
    const l = sim.leader();
    if (l !== undefined) leaders.add(`${sim.status(l).term}`);
  }

  // Liveness: once the network is healed and every node is back, a leader emerges and a
  // proposal commits on every member within a bounded number of ticks.
  sim.heal();
  for (const id of ids) if (!sim.isAlive(id) && sim.ids().includes(id)) sim.restart(id);
  sim.stabilize();
  const marker = enc.encode(`liveness:${seed}`);
  let proposed = false;
  for (let t = 0; t < LIVENESS_TICK_BOUND; t++) {
    const l = sim.leader();
    // A client retries: a proposal can be lost with a leader that had not replicated it.
    if (l !== undefined && (!proposed || t % 20 === 19)) proposed = sim.propose(l, marker).ok || proposed;
    sim.stabilize();
    if (proposed) {
      const l2 = sim.leader();
      const members = l2 !== undefined ? [...sim.status(l2).voters, ...sim.status(l2).learners] : [];
      if (members.length > 0 && members.every((id) => sim.isAlive(id) && containsBytes(sim.applied(id), marker))) {
        return { seed, nodes: n, committed: sim.safety.committedIndex(), elections: leaders.size, livenessTicks: t };
      }
    }
    sim.tick();
  }
  const l = sim.leader();
  const prs = l === undefined ? '' : ids.map((id) => `${String(id)}:${JSON.stringify(sim.raft(l)?.progress(id))}`).join(' ');
  const st = ids.map((id) => `${String(id)}=${JSON.stringify(sim.status(id))}`).join(' ');
  if (process.env.RAFT_SIM_DEBUG) console.log({ proposed, prs });
  throw new LivenessViolation(`liveness: no proposal committed on every member within ${LIVENESS_TICK_BOUND} ticks after healing (seed ${seed}): ${st}`);
}

function pick<T>(rand: Random, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function shuffle<T>(items: readonly T[], rand: Random): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function containsBytes(list: readonly Uint8Array[], needle: Uint8Array): boolean {
  return list.some((d) => d.byteLength === needle.byteLength && d.every((b, i) => b === needle[i]));
}
