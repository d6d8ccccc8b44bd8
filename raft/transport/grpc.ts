// The Raft transport between managers: gRPC over mutual TLS (proto/shoal/raft.proto, service Raft).
//
// Sending: one long-lived client stream (StreamRaftMessage) per peer carries this node's messages
// to it, in order. A snapshot travels as its MsgSnap header (metadata and size, no data)
// followed by SnapshotChunk items of `chunkSizeBytes`; the receiver reassembles them before
// handing the message to Raft. The last chunk's write callback reports the snapshot as sent.
//
// Receiving: `streamHandler` is the server half; the manager registers it on its cluster server
// (whose authorization interceptor already limits the Raft service to manager certificates). A
// stream is only accepted from the node its certificate names: `from` must be the caller's CN.
//
// Bounds: each peer has a send queue limited in messages and bytes. When it is full, or the peer
// has no address, or the stream is down (between reconnects), the message is dropped and the
// driver is told (`unreachable`, plus `snapshot ok=false` for a MsgSnap), which makes the Raft
// core fall back to probing — never an unbounded buffer. A failed stream drops its queue the same
// way, closes its channel and backs off (doubling from minBackoffMs to maxBackoffMs) before a new
// channel is opened on the next send. Received snapshots are bounded by `maxSnapshotBytes`.
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';

import { RaftClient, type RaftMessage, type RaftServer, type RaftStreamItem, type StreamRaftMessageResponse } from '../../proto/gen/shoal/raft.js';
import { MessageType as ProtoType } from '../../proto/gen/shoal/raft.js';
import { peerIdentity } from '../../proto/grpc/authz.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, type TlsMaterial } from '../../proto/grpc/tls.js';
import type { Message, NodeId } from '../types.js';
import { messageFromProto, messageToProto } from './grpc-message.js';
import type { Transport, TransportReport } from './transport.js';

export const DEFAULT_CHUNK_SIZE_BYTES = 1024 * 1024;

export interface GrpcTransportOptions {
  /** This manager's Raft ID (its node ID). */
  readonly id: string;
  readonly clusterId: string;
  /** This node's key, certificate and trusted roots (mutual TLS to peers). */
  readonly material: TlsMaterial;
  readonly peers?: ReadonlyMap<NodeId, string>;
  /** Snapshot chunk size (default 1 MiB). */
  readonly chunkSizeBytes?: number;
  /** Per-peer send queue bound, in messages (default 4096). */
  readonly maxQueuedMsgs?: number;
  /** Per-peer send queue bound, in payload bytes (default 64 MiB; one snapshot is always accepted into an empty queue). */
  readonly maxQueuedBytes?: number;
  /** Largest snapshot accepted from a peer (default 1 GiB). */
  readonly maxSnapshotBytes?: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long a new channel may take to connect before the peer counts as down (default 3 s). */
  readonly connectTimeoutMs?: number;
  readonly logger?: Logger;
}

export class GrpcTransportClosedError extends Error {
  readonly code = 'ERR_TRANSPORT_CLOSED';
  constructor() {
    super('raft grpc transport: already closed');
  }
}

type PeerState = 'idle' | 'connecting' | 'open' | 'backoff';

type Queued =
  | { readonly kind: 'message'; readonly item: RaftStreamItem; readonly sizeBytes: number }
  | { readonly kind: 'snapshot'; readonly header: RaftMessage; readonly data: Uint8Array; readonly sizeBytes: number; headerSent: boolean; offsetBytes: number };

/** Rough payload size of a message, for the byte bound (entries' data plus a fixed overhead). */
function approxSizeBytes(m: Message): number {
  if (m.type === 'app') {
    let n = 64;
    for (const e of m.entries) n += e.data.byteLength + 24;
    return n;
  }
  return 64;
}

class Peer {
  state: PeerState = 'idle';
  client: RaftClient | null = null;
  stream: grpc.ClientWritableStream<RaftStreamItem> | null = null;
  queue: Queued[] = [];
  queueHead = 0;
  queuedBytes = 0;
  writable = true;
  backoffMs: number;
  timer: NodeJS.Timeout | null = null;

  constructor(readonly id: NodeId, public addr: string, minBackoffMs: number) {
    this.backoffMs = minBackoffMs;
  }

  get queuedMsgs(): number {
    return this.queue.length - this.queueHead;
  }
}

interface Reassembly {
  readonly header: RaftMessage;
  readonly sizeBytes: number;
  readonly chunks: Buffer[];
  receivedBytes: number;
}

export class GrpcTransport implements Transport {
  private readonly peers = new Map<NodeId, Peer>();
  private readonly inbound = new Set<grpc.ServerReadableStream<RaftStreamItem, StreamRaftMessageResponse>>();
  private messageCb: (m: Message) => void = () => {};
  private reportCb: (r: TransportReport) => void = () => {};
  private closed = false;
  private material: TlsMaterial;
  private partitioned: ReadonlySet<string> = new Set();
  /** When a message from each peer last arrived (performance.now()), for reachability. */
  private readonly lastHeard = new Map<string, number>();
  private readonly log: Logger;
  private readonly chunkSizeBytes: number;
  private readonly maxQueuedMsgs: number;
  private readonly maxQueuedBytes: number;
  private readonly maxSnapshotBytes: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly connectTimeoutMs: number;

  constructor(private readonly opts: GrpcTransportOptions) {
    this.log = (opts.logger ?? pino({ name: 'raft-grpc-transport', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({ component: 'raft-transport', id: opts.id });
    this.material = opts.material;
    this.chunkSizeBytes = opts.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES;
    this.maxQueuedMsgs = opts.maxQueuedMsgs ?? 4096;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 64 * 1024 * 1024;
    this.maxSnapshotBytes = opts.maxSnapshotBytes ?? 1024 * 1024 * 1024;
    this.minBackoffMs = opts.minBackoffMs ?? 50;
    this.maxBackoffMs = opts.maxBackoffMs ?? 2000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
    if (this.chunkSizeBytes <= 0) throw new RangeError('chunkSizeBytes must be positive');
    if (opts.peers !== undefined) this.setPeers(opts.peers);
  }

  /** The server half of service Raft: register as `streamRaftMessage` on the cluster server. */
  readonly streamHandler: RaftServer['streamRaftMessage'] = (call, callback) => this.accept(call, callback);

  /** Peers and their addresses (host:port), from membership. Peers not in `peers` are dropped. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    for (const id of [...this.peers.keys()]) if (!peers.has(id)) this.removePeer(id);
    for (const [id, addr] of peers) this.setPeer(id, addr);
  }

  /** Adds a peer or changes its address (its stream is re-opened to the new address). */
  setPeer(id: NodeId, addr: string): void {
    if (String(id) === this.opts.id || this.closed) return;
    const p = this.peers.get(id);
    if (p === undefined) {
      this.peers.set(id, new Peer(id, addr, this.minBackoffMs));
      return;
    }
    if (p.addr === addr) return;
    p.addr = addr;
    this.log.info({ peer: id, addr }, 'peer address changed; reconnecting');
    this.closeChannel(p);
    this.dropQueue(p);
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
    p.state = 'idle';
    p.backoffMs = this.minBackoffMs;
  }

  removePeer(id: NodeId): void {
    const p = this.peers.get(id);
    if (p === undefined) return;
    this.peers.delete(id);
    if (p.timer !== null) clearTimeout(p.timer);
    this.closeChannel(p);
    this.dropQueue(p);
  }

  peerAddresses(): Map<NodeId, string> {
    return new Map([...this.peers].map(([id, p]) => [id, p.addr]));
  }

  /** Each peer's connection state and queue depth (diagnostics). */
  peerStates(): { peer: string; addr: string; state: string; queuedMsgs: number; heardMsAgo: number | null }[] {
    return [...this.peers.values()].map((p) => {
      const t = this.lastHeard.get(String(p.id));
      return { peer: String(p.id), addr: p.addr, state: p.state, queuedMsgs: p.queuedMsgs, heardMsAgo: t === undefined ? null : Math.round(performance.now() - t) };
    });
  }

  /** Whether a message from `peer` arrived within the last `withinMs` milliseconds. */
  heardFrom(peer: NodeId, withinMs: number): boolean {
    const t = this.lastHeard.get(String(peer));
    return t !== undefined && performance.now() - t <= withinMs;
  }

  /** New channels use this material (after a certificate renewal or a root rotation). */
  updateMaterial(material: TlsMaterial): void {
    this.material = material;
  }

  /**
   * Fault injection for tests (a network partition): messages to and from these peers are dropped
   * as if the network lost them. An empty set heals.
   */
  setPartitioned(peers: Iterable<NodeId>): void {
    this.partitioned = new Set([...peers].map(String));
    for (const id of this.partitioned) {
      const p = this.peers.get(id);
      if (p !== undefined) this.dropQueue(p);
    }
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
      const isSnap = m.type === 'snap';
      const p = this.peers.get(m.to);
      if (p === undefined || this.partitioned.has(String(m.to))) {
        if (p === undefined) this.log.debug({ to: m.to, type: m.type }, 'no address for peer; message dropped');
        this.drop(m.to, isSnap);
        continue;
      }
      if (p.state === 'backoff') {
        this.drop(p.id, isSnap);
        continue;
      }
      const q: Queued =
        m.type === 'snap'
          ? { kind: 'snapshot', header: messageToProto(m), data: m.snapshot.data, sizeBytes: m.snapshot.data.byteLength + 64, headerSent: false, offsetBytes: 0 }
          : { kind: 'message', item: { item: { $case: 'message', message: messageToProto(m) } }, sizeBytes: approxSizeBytes(m) };
      const full = p.queuedMsgs >= this.maxQueuedMsgs || (p.queuedBytes > 0 && p.queuedBytes + q.sizeBytes > this.maxQueuedBytes);
      if (full) {
        this.log.debug({ to: m.to, type: m.type, queuedMsgs: p.queuedMsgs, queuedBytes: p.queuedBytes }, 'send queue full; message dropped');
        this.drop(p.id, isSnap);
        continue;
      }
      p.queue.push(q);
      p.queuedBytes += q.sizeBytes;
      touched.add(p);
    }
    for (const p of touched) {
      if (p.state === 'idle') this.connect(p);
      else if (p.state === 'open') this.flush(p);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) {
      if (p.timer !== null) clearTimeout(p.timer);
      this.closeChannel(p);
      p.queue = [];
      p.queueHead = 0;
      p.queuedBytes = 0;
    }
    this.peers.clear();
    for (const call of this.inbound) call.destroy();
    this.inbound.clear();
  }

  // ------------------------------------------------------------------------------- sending

  private report(r: TransportReport): void {
    try {
      this.reportCb(r);
    } catch (err) {
      this.log.error({ err }, 'transport report handler threw');
    }
  }

  private drop(peer: NodeId, isSnapshot: boolean): void {
    this.report({ type: 'unreachable', peer });
    if (isSnapshot) this.report({ type: 'snapshot', peer, ok: false });
  }

  private dropQueue(p: Peer): void {
    const lost = p.queue.slice(p.queueHead);
    p.queue = [];
    p.queueHead = 0;
    p.queuedBytes = 0;
    if (lost.length === 0) return;
    this.report({ type: 'unreachable', peer: p.id });
    for (const q of lost) if (q.kind === 'snapshot') this.report({ type: 'snapshot', peer: p.id, ok: false });
  }

  private closeChannel(p: Peer): void {
    const { stream, client } = p;
    p.stream = null;
    p.client = null;
    p.writable = true;
    if (stream !== null) {
      stream.removeAllListeners('drain');
      stream.cancel();
    }
    client?.close();
  }

  private connect(p: Peer): void {
    if (this.closed || this.peers.get(p.id) !== p) return;
    p.state = 'connecting';
    p.timer = null;
    const client = new RaftClient(p.addr, clusterChannelCredentials(this.material, this.opts.clusterId), {
      ...CLUSTER_CHANNEL_OPTIONS,
      'grpc.initial_reconnect_backoff_ms': this.minBackoffMs,
      'grpc.max_reconnect_backoff_ms': this.maxBackoffMs,
    });
    p.client = client;
    client.waitForReady(Date.now() + this.connectTimeoutMs, (err) => {
      if (p.client !== client) return;
      if (err) {
        this.fail(p, `connect: ${err.message}`);
        return;
      }
      this.openStream(p, client);
    });
  }

  private openStream(p: Peer, client: RaftClient): void {
    const stream = client.streamRaftMessage((err: grpc.ServiceError | null) => {
      if (p.stream !== stream) return;
      this.fail(p, err === null ? 'the peer ended the stream' : `${grpc.status[err.code] ?? err.code}: ${err.details}`);
    });
    // Errors arrive through the callback above; a listener keeps an 'error' event from throwing.
    stream.on('error', () => {});
    stream.on('drain', () => {
      p.writable = true;
      this.flush(p);
    });
    p.stream = stream;
    p.writable = true;
    p.state = 'open';
    p.backoffMs = this.minBackoffMs;
    this.log.debug({ peer: p.id, addr: p.addr }, 'raft stream to peer open');
    this.flush(p);
  }

  private fail(p: Peer, reason: string): void {
    if (this.closed || this.peers.get(p.id) !== p) return;
    this.log.debug({ peer: p.id, addr: p.addr, reason }, 'raft stream to peer failed; backing off');
    this.closeChannel(p);
    this.dropQueue(p);
    p.state = 'backoff';
    const waitMs = p.backoffMs;
    p.backoffMs = Math.min(p.backoffMs * 2, this.maxBackoffMs);
    p.timer = setTimeout(() => {
      p.timer = null;
      if (p.state !== 'backoff') return;
      p.state = 'idle';
      if (p.queuedMsgs > 0) this.connect(p);
    }, waitMs);
  }

  /** Writes queued items in order until the stream asks us to wait ('drain'). */
  private flush(p: Peer): void {
    const stream = p.stream;
    if (stream === null || p.state !== 'open') return;
    while (p.writable && p.queueHead < p.queue.length) {
      const q = p.queue[p.queueHead]!;
      if (q.kind === 'message') {
        p.writable = stream.write(q.item);
      } else {
        p.writable = this.writeSnapshot(p, stream, q);
        if (q.offsetBytes < q.data.byteLength || !q.headerSent) return;
      }
      p.queueHead++;
      p.queuedBytes -= q.sizeBytes;
    }
    if (p.queueHead === p.queue.length) {
      p.queue = [];
      p.queueHead = 0;
    } else if (p.queueHead > 1024) {
      p.queue = p.queue.slice(p.queueHead);
      p.queueHead = 0;
    }
  }

  /** Writes the header and as many chunks as the stream takes; returns whether it is still writable. */
  private writeSnapshot(p: Peer, stream: grpc.ClientWritableStream<RaftStreamItem>, q: Extract<Queued, { kind: 'snapshot' }>): boolean {
    const to = p.id;
    const md = q.header.snapshot!;
    const onLast = (err: Error | null | undefined): void => this.report({ type: 'snapshot', peer: to, ok: err === null || err === undefined });
    if (!q.headerSent) {
      q.headerSent = true;
      const empty = q.data.byteLength === 0;
      const more = stream.write({ item: { $case: 'message', message: q.header } }, empty ? onLast : undefined);
      if (empty || !more) return more;
    }
    while (q.offsetBytes < q.data.byteLength) {
      const end = Math.min(q.offsetBytes + this.chunkSizeBytes, q.data.byteLength);
      const last = end === q.data.byteLength;
      const data = Buffer.from(q.data.buffer, q.data.byteOffset + q.offsetBytes, end - q.offsetBytes);
      const item: RaftStreamItem = { item: { $case: 'snapshotChunk', snapshotChunk: { index: md.index, term: md.term, offsetBytes: q.offsetBytes, data, last } } };
      const offset = q.offsetBytes;
      q.offsetBytes = end;
      const more = stream.write(item, last ? onLast : undefined);
      this.log.debug({ peer: to, index: md.index, offsetBytes: offset, sizeBytes: q.data.byteLength }, 'snapshot chunk sent');
      if (!more) return false;
    }
    return true;
  }

  // ----------------------------------------------------------------------------- receiving

  private accept(
    call: grpc.ServerReadableStream<RaftStreamItem, StreamRaftMessageResponse>,
    callback: grpc.sendUnaryData<StreamRaftMessageResponse>,
  ): void {
    if (this.closed) {
      callback({ code: grpc.status.UNAVAILABLE, details: 'raft transport is closed' });
      return;
    }
    const caller = peerIdentity(call)?.nodeId ?? null;
    this.inbound.add(call);
    let received = 0;
    let pending: Reassembly | null = null;
    let finished = false;
    const finish = (err: grpc.ServiceError | Partial<grpc.StatusObject> | null): void => {
      if (finished) return;
      finished = true;
      this.inbound.delete(call);
      if (err === null) callback(null, { messagesReceived: received });
      else callback(err);
    };
    const refuse = (details: string): void => {
      this.log.warn({ caller, details }, 'raft stream refused');
      finish({ code: grpc.status.INVALID_ARGUMENT, details });
      call.destroy();
    };
    call.on('data', (it: RaftStreamItem) => {
      if (this.closed || finished) return;
      const item = it.item;
      if (item === undefined) return;
      if (item.$case === 'message') {
        const m = item.message;
        if (caller === null || m.from !== caller) {
          refuse(`a raft message from ${m.from} arrived on a stream opened by ${caller ?? 'an unknown node'}`);
          return;
        }
        if (pending !== null) {
          this.log.warn({ from: m.from, index: pending.header.snapshot?.index }, 'snapshot interrupted by a message; dropped');
          pending = null;
        }
        if (m.type === ProtoType.MESSAGE_TYPE_SNAP && m.snapshotSizeBytes > 0) {
          if (m.snapshotSizeBytes > this.maxSnapshotBytes) {
            refuse(`snapshot of ${m.snapshotSizeBytes} bytes exceeds the limit of ${this.maxSnapshotBytes} bytes`);
            return;
          }
          pending = { header: m, sizeBytes: m.snapshotSizeBytes, chunks: [], receivedBytes: 0 };
          return;
        }
        received++;
        this.deliver(m);
        return;
      }
      const c = item.snapshotChunk;
      const md = pending?.header.snapshot;
      if (pending === null || md === undefined || c.index !== md.index || c.term !== md.term || c.offsetBytes !== pending.receivedBytes) {
        this.log.warn({ caller, index: c.index, offsetBytes: c.offsetBytes }, 'snapshot chunk out of sequence; snapshot dropped');
        pending = null;
        return;
      }
      pending.chunks.push(c.data);
      pending.receivedBytes += c.data.byteLength;
      if (pending.receivedBytes > pending.sizeBytes || (c.last && pending.receivedBytes !== pending.sizeBytes)) {
        refuse(`snapshot ${md.index} announced ${pending.sizeBytes} bytes, chunks carried ${pending.receivedBytes}`);
        return;
      }
      if (!c.last) return;
      const whole = Buffer.concat(pending.chunks, pending.sizeBytes);
      const header = pending.header;
      pending = null;
      received++;
      this.log.debug({ from: header.from, index: md.index, sizeBytes: whole.byteLength }, 'snapshot reassembled');
      this.deliver(header, whole);
    });
    call.on('end', () => finish(null));
    call.on('error', () => finish({ code: grpc.status.CANCELLED, details: 'stream error' }));
    call.on('close', () => {
      if (!finished) {
        finished = true;
        this.inbound.delete(call);
      }
    });
  }

  private deliver(p: RaftMessage, snapshotData?: Uint8Array): void {
    if (p.to !== this.opts.id) {
      this.log.warn({ to: p.to, type: p.type }, 'message for another node; dropped');
      return;
    }
    if (this.partitioned.has(p.from)) return;
    this.lastHeard.set(p.from, performance.now());
    let m: Message;
    try {
      m = messageFromProto(p, snapshotData);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, from: p.from }, 'undecodable raft message; dropped');
      return;
    }
    try {
      this.messageCb(m);
    } catch (err) {
      this.log.error({ err, from: m.from, type: m.type }, 'message handler threw');
    }
  }
}
