// A small seeded PRNG (xorshift32 mixed with a splitmix-style seed hash) for the core's election
// jitter and the simulator. Deterministic: the same seed gives the same sequence everywhere.

export type Random = () => number;

/** Returns a generator of floats in [0, 1) determined entirely by `seed`. */
export function seededRandom(seed: number | string): Random {
  let s = hashSeed(seed) || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

function hashSeed(seed: number | string): number {
  const text = String(seed);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche so that nearby seeds give unrelated streams.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** An integer in [lo, hi). */
export function randomInt(rand: Random, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo));
}
