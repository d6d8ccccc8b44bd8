// Protobuf wire primitives for the hand-written codecs on the hot paths (the dispatcher's
// assignment-wire.ts and node-stream-wire.ts, the agent's node-stream-codec.ts and
// assignment-reader.ts): the same bytes as the generated encoders write, the same values as the
// generated decoders read (each codec's tests check it against the generated code).

const TWO_32 = 2 ** 32;

/** How many bytes `n` (a non-negative safe integer) takes as a varint. */
export function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Writes `n` (a non-negative safe integer) as a varint at `off`; returns the offset after it. */
export function writeVarint(buf: Buffer, off: number, n: number): number {
  while (n >= 0x80) {
    buf[off++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[off++] = n;
  return off;
}

/** Buffer#toString('utf8', start, end) without its argument checks (Node's own binding; same result). */
interface Utf8Slicer {
  utf8Slice(start: number, end: number): string;
}

/** A bounded reader over one message's bytes; throws RangeError past the end (a truncated message). */
export class ProtoReader {
  pos = 0;

  /**
   * @param end where the message being read ends (a nested one's while it is read; default the
   *   buffer's end)
   */
  constructor(
    readonly buf: Buffer,
    public end: number = buf.length,
  ) {}

  /** Reads the nested message that ends at `end` with `read`, then goes on after it. */
  nested<T>(end: number, read: (r: ProtoReader) => T): T {
    const outer = this.end;
    this.end = end;
    const v = read(this);
    this.pos = end;
    this.end = outer;
    return v;
  }

  private byte(): number {
    if (this.pos >= this.end) throw new RangeError('protobuf: premature end of message');
    return this.buf[this.pos++]!;
  }

  /** A varint as an unsigned number when it fits in 53 bits; longer ones as a bigint (exact). */
  raw(): number | bigint {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    // 8–10 bytes: only huge or negative (sign-extended) values.
    let big = BigInt(value);
    let shift = 49n;
    for (let i = 7; i < 10; i++) {
      const b = this.byte();
      big |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return big;
      shift += 7n;
    }
    throw new RangeError('protobuf: varint longer than 10 bytes');
  }

  uint32(): number {
    // Tags and lengths: almost always one byte.
    if (this.pos < this.end) {
      const b = this.buf[this.pos]!;
      if (b < 0x80) {
        this.pos++;
        return b;
      }
    }
    const v = this.raw();
    return typeof v === 'number' ? v % TWO_32 : Number(BigInt.asUintN(32, v));
  }

  /** int32 and enums: the low 32 bits, signed. */
  int32(): number {
    const v = this.raw();
    return typeof v === 'number' ? v % TWO_32 | 0 : Number(BigInt.asIntN(32, v));
  }

  bool(): boolean {
    const v = this.raw();
    return v !== 0 && v !== 0n;
  }

  /** int64 / uint64 as a number, refusing what a number cannot hold exactly (as the generated longToNumber). */
  long(signed: boolean): number {
    const v = this.raw();
    const n = typeof v === 'number' ? v : Number(signed ? BigInt.asIntN(64, v) : BigInt.asUintN(64, v));
    if (n > Number.MAX_SAFE_INTEGER) throw new RangeError('Value is larger than Number.MAX_SAFE_INTEGER');
    if (n < Number.MIN_SAFE_INTEGER) throw new RangeError('Value is smaller than Number.MIN_SAFE_INTEGER');
    return n;
  }

  /** The end of a length-delimited field starting here (the position moves past its length). */
  delimited(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw new RangeError('protobuf: premature end of message');
    return end;
  }

  string(): string {
    const end = this.delimited();
    const s = (this.buf as unknown as Utf8Slicer).utf8Slice(this.pos, end);
    this.pos = end;
    return s;
  }

  /** Skips a field of an unknown number (or of a known number with another wire type). */
  skip(tag: number): void {
    switch (tag & 7) {
      case 0:
        this.raw();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.pos = this.delimited();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new RangeError(`protobuf: cannot skip wire type ${tag & 7}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new RangeError('protobuf: premature end of message');
    this.pos += n;
  }
}
