// The benchmark's small client protocol to a Shoal member, over loopback TCP with the same
// length-prefixed frames as the Raft transport.
//   request  body: u32 request id | u8 op | payload      (op 1 = put key(8)+value, 2 = status)
//   response body: u32 request id | u8 code | payload    (code 0 ok, 1 not leader, 2 error)
// A put is answered once its entry is applied on the member. Writes from both sides are
// gathered per microtask turn and sent in one write, so many concurrent requests cost one
// syscall, not one each.
import net from 'node:net';
import type { RaftNodeMetrics } from '../../raft/node.js';
import { encodeFrame, FrameDecoder } from '../../raft/transport/frame.js';

export const OP_PUT = 1;
export const OP_STATUS = 2;
export const CODE_OK = 0;
export const CODE_NOT_LEADER = 1;
export const CODE_ERROR = 2;
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export interface MemberStatus {
  readonly id: number;
  readonly role: string;
  readonly leader: number | null;
  readonly term: number;
  readonly applied: number;
  readonly metrics: RaftNodeMetrics;
}

export class ClientProtocolError extends Error {
  readonly code = 'ERR_BENCH_CLIENT';
  constructor(message: string, readonly responseCode: number) {
    super(message);
  }
}

/** Gathers frames written in one turn into a single socket write. */
export class BatchedWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  constructor(private readonly socket: net.Socket) {}

  write(body: Uint8Array): void {
    if (this.pending.length === 0) queueMicrotask(() => this.flush());
    const f = encodeFrame(body);
    this.pending.push(f);
    this.pendingBytes += f.byteLength;
  }

  private flush(): void {
    const out = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.socket.destroyed) this.socket.write(out);
  }
}

export function encodeRequest(id: number, op: number, payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + payload.byteLength);
  b.writeUInt32BE(id, 0);
  b[4] = op;
  b.set(payload, 5);
  return b;
}

export function encodeResponse(id: number, code: number, payload: Uint8Array): Buffer {
  return encodeRequest(id, code, payload);
}

/** Reads frames off a socket and hands each (id, op-or-code, payload) to `cb`. */
export function readFrames(socket: net.Socket, cb: (id: number, kind: number, payload: Buffer) => void): void {
  const dec = new FrameDecoder(MAX_FRAME_BYTES);
  socket.on('data', (chunk: Buffer) => {
    try {
      dec.push(chunk, (body) => cb(body.readUInt32BE(0), body[4]!, body.subarray(5)));
    } catch {
      socket.destroy();
    }
  });
}

/** One connection to one member; any number of requests may be outstanding. */
export class ShoalClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (p: Buffer) => void; reject: (e: Error) => void }>();
  private readonly writer: BatchedWriter;

  private constructor(private readonly socket: net.Socket) {
    this.writer = new BatchedWriter(socket);
    readFrames(socket, (id, code, payload) => {
      const w = this.waiting.get(id);
      if (w === undefined) return;
      this.waiting.delete(id);
      if (code === CODE_OK) w.resolve(payload);
      else w.reject(new ClientProtocolError(payload.toString('utf8'), code));
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      const err = new ClientProtocolError('connection to member closed', CODE_ERROR);
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<ShoalClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, noDelay: true });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new ShoalClient(s));
      });
    });
  }

  private call(op: number, payload: Uint8Array): Promise<Buffer> {
    const id = this.nextId;
    this.nextId = this.nextId === 0xffffffff ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.writer.write(encodeRequest(id, op, payload));
    });
  }

  async put(keyAndValue: Uint8Array): Promise<void> {
    await this.call(OP_PUT, keyAndValue);
  }

  async status(): Promise<MemberStatus> {
    return JSON.parse((await this.call(OP_STATUS, new Uint8Array(0))).toString('utf8')) as MemberStatus;
  }

  close(): void {
    this.socket.destroy();
  }
}
