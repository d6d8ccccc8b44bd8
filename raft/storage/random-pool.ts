// Random bytes drawn from the OS in blocks: node's synchronous randomBytes(n) costs a few
// microseconds per call whatever n is (tens under load), and the write path asks for 12 to 16
// bytes several times per request (an object ID, a nonce per sealed record). A pool refilled
// 4 KiB at a time makes each draw a copy. The bytes are as random as randomBytes' (the same
// CSPRNG, randomFillSync); each byte is handed out once, so nonces drawn from it stay unique.
// Not for secret keys: those are drawn on their own, and not kept in a shared buffer.
import { randomBytes, randomFillSync } from 'node:crypto';

export class RandomPool {
  private readonly buf: Buffer;
  private pos: number;

  constructor(readonly sizeBytes = 4096) {
    this.buf = Buffer.allocUnsafeSlow(sizeBytes);
    this.pos = sizeBytes; // filled on first use
  }

  /** `n` fresh random bytes in a buffer of their own. */
  bytes(n: number): Buffer {
    if (n > this.sizeBytes >> 2) return randomBytes(n);
    if (this.pos + n > this.sizeBytes) {
      randomFillSync(this.buf);
      this.pos = 0;
    }
    const out = Buffer.allocUnsafe(n);
    this.buf.copy(out, 0, this.pos, this.pos + n);
    // Wipe what was handed out, so the pool never holds bytes someone else is using.
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** The process's pool for IDs and nonces. */
export const randomPool = new RandomPool();
