// Content digests (`sha256:<hex>`) and a pass-through stream that hashes and counts bytes.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isSha256Digest(d: unknown): d is string {
  return typeof d === 'string' && SHA256_DIGEST.test(d);
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The hex part of a validated `sha256:` digest; used as a file name. */
export function digestHex(d: string): string {
  if (!isSha256Digest(d)) throw new Error(`not a sha256 digest: ${d}`);
  return d.slice('sha256:'.length);
}

/** Passes bytes through unchanged while hashing them; read `digest()` and `bytes` after the end. */
export class DigestingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly limitBytes = Number.POSITIVE_INFINITY) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limitBytes) {
      done(new Error(`more than the expected ${this.limitBytes} bytes`));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}
