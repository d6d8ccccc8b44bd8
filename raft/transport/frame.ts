// Length-prefixed framing for stream sockets: each frame is a 4-byte big-endian body length
// followed by the body. The decoder is bounded: a frame announcing more than `maxFrameBytes`
// is a protocol error (the peer is broken or hostile), never a reason to buffer without limit.

export const FRAME_HEADER_BYTES = 4;

export class FrameTooLargeError extends Error {
  readonly code = 'ERR_FRAME_TOO_LARGE';
  constructor(readonly sizeBytes: number, readonly maxFrameBytes: number) {
    super(`frame of ${sizeBytes} bytes exceeds the limit of ${maxFrameBytes} bytes; closing the connection`);
  }
}

/** Returns header + body in one buffer, ready for a single write. */
export function encodeFrame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.byteLength);
  out.writeUInt32BE(body.byteLength, 0);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Reassembles frames from arbitrary chunks. Chunks are kept in a list and joined only when a
 * frame spans them, so the common case (whole frames inside one chunk) copies nothing.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Feeds a chunk; calls `onFrame` for every complete frame (the body is a view, valid only during the call unless copied). Throws FrameTooLargeError. */
  push(chunk: Buffer, onFrame: (body: Buffer) => void): void {
    let buf: Buffer;
    if (this.bufferedBytes === 0) {
      buf = chunk;
    } else {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.byteLength;
      const need = this.neededBytes();
      if (need === -1 || this.bufferedBytes < need) return;
      buf = Buffer.concat(this.chunks, this.bufferedBytes);
      this.chunks = [];
      this.bufferedBytes = 0;
    }
    let off = 0;
    while (buf.byteLength - off >= FRAME_HEADER_BYTES) {
      const len = buf.readUInt32BE(off);
      if (len > this.maxFrameBytes) throw new FrameTooLargeError(len, this.maxFrameBytes);
      const end = off + FRAME_HEADER_BYTES + len;
      if (end > buf.byteLength) break;
      onFrame(buf.subarray(off + FRAME_HEADER_BYTES, end));
      off = end;
    }
    if (off < buf.byteLength) {
      const rest = buf.subarray(off);
      if (rest.byteLength >= FRAME_HEADER_BYTES) {
        const len = rest.readUInt32BE(0);
        if (len > this.maxFrameBytes) throw new FrameTooLargeError(len, this.maxFrameBytes);
      }
      this.chunks = [rest];
      this.bufferedBytes = rest.byteLength;
    }
  }

  /** Total bytes the buffered frame needs (header included), or -1 while the header is incomplete. */
  private neededBytes(): number {
    if (this.bufferedBytes < FRAME_HEADER_BYTES) return -1;
    let header = this.chunks[0]!;
    if (header.byteLength < FRAME_HEADER_BYTES) header = Buffer.concat(this.chunks, this.bufferedBytes);
    const len = header.readUInt32BE(0);
    if (len > this.maxFrameBytes) throw new FrameTooLargeError(len, this.maxFrameBytes);
    return FRAME_HEADER_BYTES + len;
  }
}
