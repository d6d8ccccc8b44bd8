// Docker's multiplexed stream ("stdcopy"): each frame is an 8-byte header — stream type (1 stdout,
// 2 stderr, 3 system error), three zero bytes, the payload length as a big-endian uint32 — then the
// payload. `/services/{id}/logs` and `/tasks/{id}/logs` write one line per frame (the docker CLI's
// `service logs` printer relies on it); shoal's exec endpoint uses the same framing.
export const STDOUT = 1;
export const STDERR = 2;
export const SYSTEM_ERR = 3;

export type FrameStream = typeof STDOUT | typeof STDERR | typeof SYSTEM_ERR;

export const HEADER_BYTES = 8;
/** A frame longer than this is refused when decoding (a corrupt stream, not a log line). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export class StreamFramingError extends Error {
  override readonly name = 'StreamFramingError';
  readonly code = 'ERR_STREAM_FRAMING';
}

/** One frame: header and payload. */
export function encodeFrame(stream: FrameStream, payload: Uint8Array | string): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = stream;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

export interface Frame {
  readonly stream: FrameStream;
  readonly payload: Buffer;
}

/** Cuts a byte stream into frames, whatever the chunk boundaries. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  /** Frames completed by this chunk. */
  push(chunk: Uint8Array): Frame[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: Frame[] = [];
    while (this.pending.length >= HEADER_BYTES) {
      const stream = this.pending[0]!;
      if (stream !== STDOUT && stream !== STDERR && stream !== SYSTEM_ERR && stream !== 0) {
        throw new StreamFramingError(`unknown stream type ${stream} in a multiplexed stream`);
      }
      const length = this.pending.readUInt32BE(4);
      if (length > MAX_FRAME_BYTES) throw new StreamFramingError(`a frame of ${length} bytes is longer than the ${MAX_FRAME_BYTES} allowed`);
      if (this.pending.length < HEADER_BYTES + length) break;
      // Stream 0 is stdin in Docker's scheme; it never comes from a daemon, treat it as stdout.
      out.push({ stream: (stream === 0 ? STDOUT : stream) as FrameStream, payload: this.pending.subarray(HEADER_BYTES, HEADER_BYTES + length) });
      this.pending = this.pending.subarray(HEADER_BYTES + length);
    }
    if (this.pending.length === 0) this.pending = Buffer.alloc(0);
    return out;
  }

  /** Bytes of an unfinished frame left at the end of the stream. */
  get leftover(): number {
    return this.pending.length;
  }
}

/** Docker's RFC3339Nano with a fixed 9-digit fraction, UTC: `2006-01-02T15:04:05.000000000Z`. */
export function timestampNano(unixMs: number): string {
  const iso = new Date(unixMs).toISOString(); // 2006-01-02T15:04:05.123Z
  return `${iso.slice(0, 19)}.${iso.slice(20, 23)}000000Z`;
}

/** Go's url.QueryEscape. */
export function queryEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** `k=v` pairs sorted by key, escaped, joined by commas (the `details=1` part of a log line). */
export function formatDetails(attrs: Readonly<Record<string, string>>): string {
  return Object.keys(attrs)
    .sort()
    .map((k) => `${queryEscape(k)}=${queryEscape(attrs[k]!)}`)
    .join(',');
}

/** Parses the details part back (what the docker CLI does with it). */
export function parseDetails(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === '') return out;
  for (const pair of text.split(',')) {
    const i = pair.indexOf('=');
    if (i < 0) throw new StreamFramingError(`invalid details format: ${pair}`);
    const dec = (x: string): string => decodeURIComponent(x.replace(/\+/g, ' '));
    out[dec(pair.slice(0, i))] = dec(pair.slice(i + 1));
  }
  return out;
}
