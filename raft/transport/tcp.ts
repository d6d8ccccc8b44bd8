// Interim Raft transport over plain TCP (loopback or a trusted network), to be replaced by the
// gRPC/mTLS transport. One outgoing connection per peer carries this node's messages to it;
// messages from a peer arrive on the connection that peer opened to us. Frames are
// length-prefixed codec output (frame.ts).
//
// Bounds: each peer has a send queue limited in messages and bytes; when it is full, or the
// peer is down (between reconnect attempts), messages are dropped and the driver is told the
// peer is unreachable, which makes the Raft core fall back to probing it. Reconnects back off
// exponentially up to `maxBackoffMs`. Frames larger than `maxFrameBytes` close the connection.
import net from 'node:net';
import { pino, type Logger } from 'pino';
import { decodeMessage, encodeMessage } from '../codec.js';
import type { Message, NodeId } from '../types.js';
import { encodeFrame, FrameDecoder } from './frame.js';
import type { Transport, TransportReport } from './transport.js';

export interface MessageCodec {
  encode(m: Message): Uint8Array;
  decode(body: Uint8Array): Message;
}

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface TcpTransportOptions {
  readonly id: NodeId;
  /** Defaults to raft/codec's binary message encoding. */
  readonly codec?: MessageCodec;
  /** Address to listen on; port 0 picks a free port (read it back from `address`). */
  readonly listen: PeerAddress;
  readonly peers?: ReadonlyMap<NodeId, PeerAddress>;
  /** Per-peer send queue bound, in messages (default 4096). */
  readonly maxQueuedMsgs?: number;
  /** Per-peer send queue bound, in encoded bytes (default 64 MiB). */
  readonly maxQueuedBytes?: number;
  /** Largest frame accepted or sent (default 256 MiB, room for a snapshot). */
  readonly maxFrameBytes?: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly connectTimeoutMs?: number;
  /** Inbound connections accepted at once (default 64); more are closed on arrival. */
  readonly maxInboundConnections?: number;
  readonly logger?: Logger;
}

export class TransportClosedError extends Error {
  readonly code = 'ERR_TRANSPORT_CLOSED';
  constructor() {
    super('raft transport: already closed');
  }
}

type PeerState = 'idle' | 'connecting' | 'connected' | 'backoff';

/** An encoded message waiting for its socket; snapshot messages remember their recipient for the report. */
interface Queued {
  readonly frame: Buffer;
  readonly snapshotTo: NodeId | null;
}

class Peer {
  state: PeerState = 'idle';
  socket: net.Socket | null = null;
  queue: Queued[] = [];
  queueHead = 0;
  queuedBytes = 0;
  /** False while the socket's buffer is above its high-water mark; we wait for 'drain'. */
  writable = true;
  backoffMs: number;
  timer: NodeJS.Timeout | null = null;

  constructor(readonly id: NodeId, public addr: PeerAddress, minBackoffMs: number) {
    this.backoffMs = minBackoffMs;
  }

  get queuedMsgs(): number {
    return this.queue.length - this.queueHead;
  }
}

export class TcpTransport implements Transport {
  private readonly peers = new Map<NodeId, Peer>();
  private readonly inbound = new Set<net.Socket>();
  private messageCb: (m: Message) => void = () => {};
  private reportCb: (r: TransportReport) => void = () => {};
  private closed = false;
  private readonly log: Logger;
  private readonly maxQueuedMsgs: number;
  private readonly maxQueuedBytes: number;
  private readonly maxFrameBytes: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly connectTimeoutMs: number;
  private readonly codec: MessageCodec;

  private constructor(private readonly opts: TcpTransportOptions, private readonly server: net.Server) {
    this.log = opts.logger ?? pino({ name: 'raft-transport', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' });
    this.maxQueuedMsgs = opts.maxQueuedMsgs ?? 4096;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 64 * 1024 * 1024;
    this.maxFrameBytes = opts.maxFrameBytes ?? 256 * 1024 * 1024;
    this.minBackoffMs = opts.minBackoffMs ?? 20;
    this.maxBackoffMs = opts.maxBackoffMs ?? 1000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
    this.codec = opts.codec ?? { encode: encodeMessage, decode: decodeMessage };
    for (const [id, addr] of opts.peers ?? []) this.setPeer(id, addr);
    server.on('connection', (s) => this.accept(s));
  }

  /** Starts listening; resolves once the port is bound. */
  static async listen(opts: TcpTransportOptions): Promise<TcpTransport> {
    const server = net.createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listen.port, opts.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new TcpTransport(opts, server);
  }

  get address(): PeerAddress {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('raft transport: listener has no TCP address');
    return { host: a.address, port: a.port };
  }

  /** Adds a peer or changes its address (an existing connection is re-opened to the new address). */
  setPeer(id: NodeId, addr: PeerAddress): void {
    if (id === this.opts.id) return;
    const p = this.peers.get(id);
    if (p === undefined) {
      this.peers.set(id, new Peer(id, addr, this.minBackoffMs));
      return;
    }
    if (p.addr.host === addr.host && p.addr.port === addr.port) return;
    p.addr = addr;
    p.socket?.destroy();
  }

  removePeer(id: NodeId): void {
    const p = this.peers.get(id);
    if (p === undefined) return;
    this.peers.delete(id);
    if (p.timer !== null) clearTimeout(p.timer);
    p.socket?.destroy();
    this.dropQueue(p);
  }

  onMessage(cb: (m: Message) => void): void {
    this.messageCb = cb;
  }

  onReport(cb: (r: TransportReport) => void): void {
    this.reportCb = cb;
  }

  send(msgs: readonly Message[]): void {
    if (this.closed || msgs.length === 0) return;
    const touched = new Set<Peer>();
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (p === undefined) {
        this.log.debug({ to: m.to, type: m.type }, 'no address for peer; message dropped');
        this.report({ type: 'unreachable', peer: m.to });
        if (m.type === 'snap') this.report({ type: 'snapshot', peer: m.to, ok: false });
        continue;
      }
      if (p.state === 'backoff') {
        this.drop(p, m.type === 'snap');
        continue;
      }
      const frame = encodeFrame(this.codec.encode(m));
      if (frame.byteLength - 4 > this.maxFrameBytes) {
        this.log.error({ to: m.to, type: m.type, sizeBytes: frame.byteLength }, 'message larger than maxFrameBytes; dropped');
        this.drop(p, m.type === 'snap');
        continue;
      }
      if (p.queuedMsgs >= this.maxQueuedMsgs || p.queuedBytes + frame.byteLength > this.maxQueuedBytes) {
        this.drop(p, m.type === 'snap');
        continue;
      }
      p.queue.push({ frame, snapshotTo: m.type === 'snap' ? m.to : null });
      p.queuedBytes += frame.byteLength;
      touched.add(p);
    }
    for (const p of touched) {
      if (p.state === 'idle') this.connect(p);
      else if (p.state === 'connected') this.flush(p);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) {
      if (p.timer !== null) clearTimeout(p.timer);
      p.socket?.destroy();
      p.queue = [];
      p.queueHead = 0;
      p.queuedBytes = 0;
    }
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private report(r: TransportReport): void {
    try {
      this.reportCb(r);
    } catch (err) {
      this.log.error({ err }, 'transport report handler threw');
    }
  }

  private drop(p: Peer, isSnapshot: boolean): void {
    this.report({ type: 'unreachable', peer: p.id });
    if (isSnapshot) this.report({ type: 'snapshot', peer: p.id, ok: false });
  }

  private dropQueue(p: Peer): void {
    const lost = p.queue.slice(p.queueHead);
    p.queue = [];
    p.queueHead = 0;
    p.queuedBytes = 0;
    if (lost.length === 0) return;
    this.report({ type: 'unreachable', peer: p.id });
    for (const q of lost) if (q.snapshotTo !== null) this.report({ type: 'snapshot', peer: q.snapshotTo, ok: false });
  }

  private connect(p: Peer): void {
    if (this.closed || !this.peers.has(p.id)) return;
    p.state = 'connecting';
    p.timer = null;
    const s = net.connect({ host: p.addr.host, port: p.addr.port, noDelay: true });
    p.socket = s;
    p.writable = true;
    s.setTimeout(this.connectTimeoutMs, () => s.destroy(new Error(`connect timeout after ${this.connectTimeoutMs} ms`)));
    s.once('connect', () => {
      s.setTimeout(0);
      s.setKeepAlive(true, 10_000);
      p.state = 'connected';
      p.backoffMs = this.minBackoffMs;
      this.log.debug({ peer: p.id, addr: p.addr }, 'connected to peer');
      this.flush(p);
    });
    s.on('drain', () => {
      p.writable = true;
      this.flush(p);
    });
    // This side only writes; anything the peer sends back on it is ignored.
    s.on('data', () => {});
    s.on('error', (err) => this.log.debug({ peer: p.id, err: err.message }, 'peer connection error'));
    s.once('close', () => {
      if (p.socket !== s) return;
      p.socket = null;
      this.dropQueue(p);
      if (this.closed || !this.peers.has(p.id)) return;
      // Drop while backing off: queued messages would be stale by the time we reconnect,
      // and Raft retransmits what matters.
      p.state = 'backoff';
      const wait = p.backoffMs;
      p.backoffMs = Math.min(p.backoffMs * 2, this.maxBackoffMs);
      p.timer = setTimeout(() => this.connect(p), wait);
    });
  }

  /** Writes everything queued in one corked batch (one writev), stopping at the socket's high-water mark. */
  private flush(p: Peer): void {
    const s = p.socket;
    if (s === null || p.state !== 'connected' || !p.writable || p.queuedMsgs === 0) return;
    s.cork();
    while (p.queueHead < p.queue.length) {
      const q = p.queue[p.queueHead]!;
      p.queueHead++;
      p.queuedBytes -= q.frame.byteLength;
      const to = q.snapshotTo;
      const more = s.write(q.frame, to === null ? undefined : (err) => this.report({ type: 'snapshot', peer: to, ok: !err }));
      if (!more) {
        p.writable = false;
        break;
      }
    }
    s.uncork();
    if (p.queueHead === p.queue.length) {
      p.queue = [];
      p.queueHead = 0;
    } else if (p.queueHead > 1024) {
      p.queue = p.queue.slice(p.queueHead);
      p.queueHead = 0;
    }
  }

  private accept(s: net.Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    const limit = this.opts.maxInboundConnections ?? 64;
    if (this.inbound.size >= limit) {
      this.log.warn({ remote: s.remoteAddress, limit }, 'too many inbound connections; closing the new one');
      s.destroy();
      return;
    }
    this.inbound.add(s);
    s.setNoDelay(true);
    const decoder = new FrameDecoder(this.maxFrameBytes);
    s.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (body) => this.deliver(body));
      } catch (err) {
        this.log.warn({ err: (err as Error).message, remote: s.remoteAddress }, 'undecodable frame from peer; closing connection');
        s.destroy();
      }
    });
    s.on('error', (err) => this.log.debug({ err: err.message }, 'inbound connection error'));
    s.once('close', () => this.inbound.delete(s));
  }

  /** Decode errors propagate (the connection is closed); a failing receiver is logged, not blamed on the peer. */
  private deliver(body: Buffer): void {
    const m = this.codec.decode(body);
    if (m.to !== this.opts.id) {
      this.log.warn({ to: m.to, self: this.opts.id, type: m.type }, 'message for another node; dropped');
      return;
    }
    try {
      this.messageCb(m);
    } catch (err) {
      this.log.error({ err, from: m.from, type: m.type }, 'message handler threw');
    }
  }
}
