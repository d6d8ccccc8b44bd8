// The gRPC/mTLS Raft transport with real RaftNodes, real certificates from ca/ and the real
// cluster server (authorization interceptor included) on loopback.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ClusterCA } from '../../ca/cluster-ca.js';
import type { NodeIdentity } from '../../ca/identity.js';
import { newNodeId } from '../../ca/ids.js';
import { MANAGER_ROLE, WORKER_ROLE } from '../../ca/roles.js';
import { RaftService, type RaftServer } from '../../proto/gen/shoal/raft.js';
import { InMemoryRemovedNodes } from '../../proto/grpc/authz.js';
import { createClusterServer, type ClusterServer } from '../../proto/grpc/server.js';
import { RaftNode } from '../node.js';
import type { Entry, Message, Snapshot } from '../types.js';
import { GrpcTransport } from './grpc.js';
import type { TransportReport } from './transport.js';

const silent = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });

/** Polls every 10 ms until `cond` holds, at most `limitMs`. */
async function until(what: string, cond: () => boolean, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let ca: ClusterCA;
let baseDir: string;

beforeAll(async () => {
  ca = await ClusterCA.create({ nowMs: Date.now() });
  baseDir = await mkdtemp(path.join(os.tmpdir(), 'shoal-grpc-transport-'));
});

afterAll(async () => {
  await rm(baseDir, { recursive: true, force: true });
});

/** A member: identity, cluster server with the Raft service, transport, and a KV state machine under a RaftNode. */
class Member {
  node: RaftNode | null = null;
  server: ClusterServer | null = null;
  transport: GrpcTransport | null = null;
  addr = '';
  readonly kv = new Map<string, string>();
  restores = 0;
  readonly dek = randomBytes(32);

  constructor(readonly identity: NodeIdentity, readonly dir: string) {}

  get id(): string {
    return this.identity.nodeId;
  }

  async start(peers: readonly string[] | undefined, addrs: () => Map<string, string>, extra: { chunkSizeBytes?: number; port?: number } = {}): Promise<void> {
    const transport = new GrpcTransport({
      id: this.id,
      clusterId: ca.clusterId,
      material: this.identity,
      logger: silent,
      minBackoffMs: 20,
      maxBackoffMs: 200,
      ...(extra.chunkSizeBytes !== undefined ? { chunkSizeBytes: extra.chunkSizeBytes } : {}),
    });
    const server = createClusterServer({ material: this.identity, clusterId: ca.clusterId, removed: new InMemoryRemovedNodes(), logger: silent });
    const impl: RaftServer = { streamRaftMessage: transport.streamHandler, resolveAddress: (_call, cb) => cb(null, { addr: '' }) };
    server.server.addService(RaftService, impl);
    const port = await server.listen(`127.0.0.1:${extra.port ?? 0}`);
    this.addr = `127.0.0.1:${port}`;
    this.server = server;
    this.transport = transport;
    this.node = await RaftNode.open({
      id: this.id,
      ...(peers !== undefined ? { peers } : {}),
      dir: this.dir,
      dek: this.dek,
      transport,
      tickMs: 20,
      electionTick: 10,
      logger: silent,
      apply: (e: Entry) => {
        const [k, v] = new TextDecoder().decode(e.data).split('=');
        this.kv.set(k!, v!);
      },
      restore: (s: Snapshot) => {
        this.restores++;
        this.kv.clear();
        if (s.data.byteLength > 0) for (const [k, v] of JSON.parse(new TextDecoder().decode(s.data)) as [string, string][]) this.kv.set(k, v);
      },
      snapshotData: () => new TextEncoder().encode(JSON.stringify([...this.kv])),
      snapshotIntervalEntries: 20,
      snapshotKeepEntries: 2,
    });
    transport.setPeers(addrs());
  }

  async stop(): Promise<void> {
    await this.node?.close();
    await this.server?.close(200);
    this.node = null;
    this.server = null;
    this.transport = null;
  }
}

const members: Member[] = [];

afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()));
});

async function cluster(size: number, chunkSizeBytes?: number): Promise<Member[]> {
  const ms: Member[] = [];
  for (let i = 0; i < size; i++) {
    const identity = await ca.issueLocalIdentity(newNodeId(), MANAGER_ROLE, Date.now());
    ms.push(new Member(identity, path.join(baseDir, `${identity.nodeId}`)));
  }
  members.push(...ms);
  const addrs = (): Map<string, string> => new Map(ms.filter((m) => m.addr !== '').map((m) => [m.id, m.addr]));
  for (const m of ms) await m.start(ms.map((x) => x.id), addrs, chunkSizeBytes !== undefined ? { chunkSizeBytes } : {});
  for (const m of ms) m.transport!.setPeers(addrs());
  return ms;
}

function leaderOf(ms: Member[]): Member | undefined {
  return ms.find((m) => m.node?.status().role === 'leader');
}

async function put(ms: Member[], key: string, value: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const l = leaderOf(ms);
    if (l !== undefined) {
      try {
        await l.node!.propose(new TextEncoder().encode(`${key}=${value}`));
        return;
      } catch {
        // leadership moved; try again
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`could not write ${key}`);
}

describe('GrpcTransport', () => {
  it('replicates between three RaftNodes over mutual TLS', async () => {
    const ms = await cluster(3);
    await until('a leader', () => leaderOf(ms) !== undefined);
    for (let i = 0; i < 15; i++) await put(ms, `k${i}`, `v${i}`);
    await until('every member applied all writes', () => ms.every((m) => m.kv.size === 15));
    for (const m of ms) expect([...m.kv]).toEqual([...ms[0]!.kv]);
  });

  it('sends a follower that fell behind the compaction a chunked snapshot, and reconnects to a peer that was down', async () => {
    const chunkSizeBytes = 256;
    const ms = await cluster(3, chunkSizeBytes);
    await until('a leader', () => leaderOf(ms) !== undefined);
    const lagging = ms.find((m) => m !== leaderOf(ms))!;
    const port = Number(lagging.addr.split(':')[1]);
    await lagging.stop();
    // The others keep writing past several snapshots (every 20 entries, 2 kept): the lagging
    // member's next entry is compacted away, so only a snapshot can bring it back.
    const value = 'x'.repeat(40);
    for (let i = 0; i < 70; i++) await put(ms, `k${i}`, `${value}${i}`);
    const live = ms.filter((m) => m !== lagging);
    const snapshotBytes = new TextEncoder().encode(JSON.stringify([...live[0]!.kv])).byteLength;
    expect(snapshotBytes).toBeGreaterThan(chunkSizeBytes * 10);
    const addrs = (): Map<string, string> => new Map(ms.map((m) => [m.id, m.addr]));
    // Back on the same port (the others still have that address), as after a restart.
    await lagging.start(undefined, addrs, { chunkSizeBytes, port });
    await until('the lagging member caught up', () => lagging.kv.size === 70);
    expect(lagging.restores).toBeGreaterThan(0);
    expect([...lagging.kv].sort()).toEqual([...live[0]!.kv].sort());
    // And it takes part in replication again.
    await put(ms, 'after', 'yes');
    await until('the write reached every member', () => ms.every((m) => m.kv.get('after') === 'yes'));
  });

  it('drops and reports instead of queueing without bound, and reports unknown peers', async () => {
    const identity = await ca.issueLocalIdentity(newNodeId(), MANAGER_ROLE, Date.now());
    // A peer that accepts TCP but never answers TLS: the channel stays "connecting", so messages queue.
    const sockets = new Set<net.Socket>();
    const sink = net.createServer((s) => void sockets.add(s));
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const t = new GrpcTransport({ id: identity.nodeId, clusterId: ca.clusterId, material: identity, logger: silent, maxQueuedMsgs: 4, connectTimeoutMs: 10_000 });
    try {
      const reports: TransportReport[] = [];
      t.onReport((r) => reports.push(r));
      t.setPeers(new Map([['peer', `127.0.0.1:${(sink.address() as net.AddressInfo).port}`]]));
      const hb = (commit: number): Message => ({ type: 'heartbeat', from: identity.nodeId, to: 'peer', term: 1, commit, context: null });
      t.send([hb(1), hb(2), hb(3), hb(4)]);
      expect(reports).toEqual([]);
      t.send([hb(5)]);
      expect(reports).toEqual([{ type: 'unreachable', peer: 'peer' }]);
      const snap: Message = { type: 'snap', from: identity.nodeId, to: 'nobody', term: 1, snapshot: { metadata: { index: 5, term: 1, confState: { voters: [], learners: [] } }, data: new Uint8Array(10) } };
      t.send([snap]);
      expect(reports.slice(1)).toEqual([
        { type: 'unreachable', peer: 'nobody' },
        { type: 'snapshot', peer: 'nobody', ok: false },
      ]);
    } finally {
      await t.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => sink.close(() => r()));
    }
  });

  it('refuses raft streams from a worker certificate and messages whose sender is not the caller', async () => {
    const ms = await cluster(1);
    const target = ms[0]!;
    await until('a leader', () => leaderOf(ms) !== undefined);
    const worker = await ca.issueLocalIdentity(newNodeId(), WORKER_ROLE, Date.now());
    const manager = await ca.issueLocalIdentity(newNodeId(), MANAGER_ROLE, Date.now());
    for (const [identity, from] of [
      [worker, worker.nodeId],
      [manager, 'someone-else'],
    ] as const) {
      const t = new GrpcTransport({ id: identity.nodeId, clusterId: ca.clusterId, material: identity, logger: silent, minBackoffMs: 20 });
      const reports: TransportReport[] = [];
      t.onReport((r) => reports.push(r));
      t.setPeers(new Map([[target.id, target.addr]]));
      try {
        await until('the stream failed', () => {
          t.send([{ type: 'heartbeat', from, to: target.id, term: 1000, commit: 0, context: null }]);
          return reports.some((r) => r.type === 'unreachable');
        });
      } finally {
        await t.close();
      }
    }
    // Had either heartbeat (term 1000) been stepped, the node would have followed term 1000.
    expect(target.node!.status().role).toBe('leader');
    expect(target.node!.status().term).toBeLessThan(1000);
  });
});
