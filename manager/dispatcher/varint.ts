// Protobuf base-128 varints of non-negative safe integers, for the dispatcher's hand-built wire
// (assignment-wire.ts, node-stream-wire.ts): the same bytes as the generated encoders write.

/** How many bytes `n` takes as a varint. */
export function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Writes `n` as a varint at `off`; returns the offset after it. */
export function writeVarint(buf: Buffer, off: number, n: number): number {
  while (n >= 0x80) {
    buf[off++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[off++] = n;
  return off;
}
