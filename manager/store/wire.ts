// Byte-level helpers shared by the transaction (actions.ts) and snapshot (snapshot.ts)
// encodings: a growable writer and a bounds-checked reader, with unsigned LEB128 varints for
// integers up to 2^53.

export class WireDecodeError extends Error {
  readonly code: string = 'ERR_STORE_WIRE_DECODE';
}

export class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(sizeHint: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64, sizeHint));
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`store batch: cannot encode ${n} as a varint`);
    this.ensure(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  /** A length-prefixed UTF-8 string, written without an intermediate Buffer. */
  string(s: string): void {
    const max = Buffer.byteLength(s, 'utf8');
    this.varint(max);
    this.ensure(max);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw new WireDecodeError('truncated');
    return this.buf[this.pos++]!;
  }

  bytes(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new WireDecodeError('truncated');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  varint(): number {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      n += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return n;
      mul *= 0x80;
    }
    throw new WireDecodeError('varint longer than 8 bytes');
  }

  string(): string {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.buf.length) throw new WireDecodeError('truncated');
    this.pos += len;
    // Decoded in place: no Buffer view per string.
    return this.buf.toString('utf8', start, start + len);
  }

  get done(): boolean {
    return this.pos === this.buf.length;
  }
}
