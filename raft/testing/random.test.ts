// Randomized simulation: RAFT_SIM_RUNS seeded runs (2,000 by default), each checking the safety
// invariants after every step and liveness after healing. A failure names its seed; replay one
// seed with RAFT_SIM_SEED=<seed> npx vitest run raft/testing/random.test.ts.
import { describe, expect, test } from 'vitest';
import { randomRun } from './random-run.js';

const RUNS = Number(process.env.RAFT_SIM_RUNS ?? 2000);
const ONLY = process.env.RAFT_SIM_SEED !== undefined ? Number(process.env.RAFT_SIM_SEED) : undefined;
const SHARDS = 4;

describe('randomized simulation (drops, delays, reordering, partitions, crash/restart, membership)', () => {
  if (ONLY !== undefined) {
    test(`seed ${ONLY}`, () => {
      randomRun(ONLY);
    });
    return;
  }
  for (let shard = 0; shard < SHARDS; shard++) {
    test(`seeds ${shard} mod ${SHARDS} of ${RUNS}: safety after every step, liveness after healing`, () => {
      let runs = 0;
      let committed = 0;
      for (let seed = shard; seed < RUNS; seed += SHARDS) {
        try {
          const r = randomRun(seed);
          committed += r.committed;
        } catch (err) {
          throw new Error(`seed ${seed} failed (replay: RAFT_SIM_SEED=${seed} npx vitest run raft/testing/random.test.ts): ${(err as Error).message}`, { cause: err });
        }
        runs++;
      }
      expect(runs).toBe(Math.ceil((RUNS - shard) / SHARDS));
      // The runs did real work: entries were committed, not just elections.
      expect(committed).toBeGreaterThan(runs);
    }, 600_000);
  }
});

test('a seed replays exactly', () => {
  const a = randomRun(12345);
  const b = randomRun(12345);
  expect(b).toEqual(a);
});
