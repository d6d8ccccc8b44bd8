// Shared by crash.test.ts and its child process crash-writer.fixture.ts.
import type { Entry } from '../types.js';

/** Entry i as the crash writer writes it: content and size derived from i alone. */
export function expectedEntry(index: number): Entry {
  const data = Buffer.alloc(8 + (index % 300));
  data.writeUInt32BE(index >>> 0, 0);
  for (let j = 4; j < data.byteLength; j++) data[j] = (index * 7 + j) & 0xff;
  return { term: 1, index, type: 'normal', data };
}

/** Small seeded PRNG, so a failing run replays from its printed seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
