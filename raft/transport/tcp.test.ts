import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { pino } from 'pino';
import type { Message, NodeId } from '../types.js';
import { encodeFrame, FrameDecoder, FrameTooLargeError } from './frame.js';
import { TcpTransport } from './tcp.js';
import type { TransportReport } from './transport.js';

const LOOPBACK = { host: '127.0.0.1', port: 0 };
const opened: TcpTransport[] = [];

async function open(id: NodeId, extra: Partial<Parameters<typeof TcpTransport.listen>[0]> = {}): Promise<TcpTransport> {
  const t = await TcpTransport.listen({ id, listen: LOOPBACK, logger: pino({ level: 'silent' }), minBackoffMs: 10, maxBackoffMs: 50, ...extra });
  opened.push(t);
  return t;
}

function heartbeat(from: NodeId, to: NodeId, commit: number): Message {
  return { type: 'heartbeat', from, to, term: 3, commit, context: null };
}

/** Waits until `cond` holds, polling every 5 ms, at most `limitMs`. */
async function until(cond: () => boolean, limitMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > limitMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});

describe('FrameDecoder', () => {
  it('reassembles frames split at every byte boundary and several frames in one chunk', () => {
    const bodies = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('hello world'), Buffer.alloc(300, 7)];
    const wire = Buffer.concat(bodies.map((b) => encodeFrame(b)));
    for (const step of [1, 2, 3, 5, 64, wire.length]) {
      const d = new FrameDecoder(1024);
      const got: string[] = [];
      for (let i = 0; i < wire.length; i += step) d.push(wire.subarray(i, i + step), (b) => got.push(b.toString('hex')));
      expect(got).toEqual(bodies.map((b) => b.toString('hex')));
    }
  });

  it('refuses a frame announcing more than its limit', () => {
    const d = new FrameDecoder(10);
    expect(() => d.push(encodeFrame(Buffer.alloc(11)), () => {})).toThrow(FrameTooLargeError);
  });
});

describe('TcpTransport', () => {
  it('delivers messages in order between two nodes in both directions', async () => {
    const a = await open(1);
    const b = await open(2);
    a.setPeer(2, b.address);
    b.setPeer(1, a.address);
    const atB: Message[] = [];
    const atA: Message[] = [];
    b.onMessage((m) => atB.push(m));
    a.onMessage((m) => atA.push(m));
    for (let i = 0; i < 50; i++) a.send([heartbeat(1, 2, i), heartbeat(1, 2, i + 1000)]);
    b.send([{ type: 'appResp', from: 2, to: 1, term: 3, index: 9, reject: false, rejectHint: 0, logTerm: 0 }]);
    await until(() => atB.length === 100 && atA.length === 1);
    expect(atB.filter((m) => m.type === 'heartbeat').map((m) => (m.type === 'heartbeat' ? m.commit : -1))).toEqual(
      Array.from({ length: 50 }, (_, i) => [i, i + 1000]).flat(),
    );
    expect(atA[0]).toMatchObject({ type: 'appResp', from: 2, index: 9 });
  });

  it('reports a peer with no address, or one that is down, as unreachable and reconnects when it is back', async () => {
    const a = await open(1);
    const reports: TransportReport[] = [];
    a.onReport((r) => reports.push(r));
    a.send([heartbeat(1, 9, 1)]);
    expect(reports).toContainEqual({ type: 'unreachable', peer: 9 });

    // Reserve a port, then free it, so the peer is down at that address.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    a.setPeer(2, { host: '127.0.0.1', port });
    a.send([heartbeat(1, 2, 1)]);
    await until(() => reports.some((r) => r.type === 'unreachable' && r.peer === 2));

    // The peer comes up at that address: later sends get through after a reconnect.
    let b: TcpTransport;
    try {
      b = await open(2, { listen: { host: '127.0.0.1', port } });
    } catch {
      return; // someone else took the port in between; the unreachable half was still checked
    }
    const atB: Message[] = [];
    b.onMessage((m) => atB.push(m));
    await until(() => {
      a.send([heartbeat(1, 2, 7)]);
      return atB.length > 0;
    });
    expect(atB[0]).toMatchObject({ type: 'heartbeat', from: 1, commit: 7 });
  });

  it('bounds the per-peer queue: beyond it messages are dropped and reported, not buffered', async () => {
    // A peer that accepts the connection but never reads fills the socket buffers, then our queue.
    const sinkSockets = new Set<net.Socket>();
    const sink = net.createServer((s) => {
      sinkSockets.add(s);
      s.pause();
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    try {
      const a = await open(1, { maxQueuedMsgs: 8 });
      const reports: TransportReport[] = [];
      a.onReport((r) => reports.push(r));
      a.setPeer(2, { host: '127.0.0.1', port: (sink.address() as net.AddressInfo).port });
      const big: Message = {
        type: 'app', from: 1, to: 2, term: 1, index: 0, logTerm: 0, commit: 0,
        entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array(1 << 20) }],
      };
      await until(() => {
        a.send([big]);
        return reports.some((r) => r.type === 'unreachable' && r.peer === 2);
      }, 10_000);
    } finally {
      for (const s of sinkSockets) s.destroy();
      await new Promise<void>((r) => sink.close(() => r()));
    }
  });

  it('closes inbound connections beyond its limit', async () => {
    const a = await open(1, { maxInboundConnections: 1 });
    const first = net.connect(a.address.port, '127.0.0.1');
    await new Promise<void>((r) => first.once('connect', () => r()));
    try {
      await until(() => (a as unknown as { inbound: Set<net.Socket> }).inbound.size === 1);
      const second = net.connect(a.address.port, '127.0.0.1');
      second.on('error', () => {});
      const closed = await new Promise<boolean>((r) => {
        second.once('close', () => r(true));
        setTimeout(() => r(false), 5000).unref();
      });
      expect(closed).toBe(true);
      expect(first.destroyed).toBe(false);
    } finally {
      first.destroy();
    }
  });

  it('ignores messages addressed to another node', async () => {
    const a = await open(1);
    const b = await open(2);
    a.setPeer(2, b.address);
    const atB: Message[] = [];
    b.onMessage((m) => atB.push(m));
    // Node 1 believes node 2 lives at b's address but addresses node 3: b must drop it.
    a.setPeer(3, b.address);
    a.send([heartbeat(1, 3, 5), heartbeat(1, 2, 6)]);
    await until(() => atB.length === 1);
    expect(atB[0]).toMatchObject({ to: 2, commit: 6 });
  });
});
