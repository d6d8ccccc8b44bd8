// Three real RaftNodes in one process: loopback TCP transports, LevelDB logs in temp dirs,
// fsync on. What a user of the driver sees: a leader is elected, proposals resolve once
// applied and every node applies the same sequence, a closed leader is replaced, a restarted
// node rebuilds its state machine from its own log and catches up.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ProposalRejectedError, RaftNode } from './node.js';
import { TcpTransport } from './transport/tcp.js';
import type { NodeId } from './types.js';

const silent = pino({ level: 'silent' });
const IDS = [1, 2, 3] as const;

interface Member {
  node: RaftNode;
  transport: TcpTransport;
  applied: string[];
}

const dirs: string[] = [];
const live = new Set<RaftNode>();

afterEach(async () => {
  await Promise.allSettled([...live].map((n) => n.close()));
  live.clear();
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

interface SnapshotPolicy {
  readonly intervalEntries: number;
  readonly keepEntries: number;
}

async function startMember(id: NodeId, dir: string, dek: Uint8Array, snapshots?: SnapshotPolicy): Promise<Member> {
  const transport = await TcpTransport.listen({ id, listen: { host: '127.0.0.1', port: 0 }, logger: silent, minBackoffMs: 5, maxBackoffMs: 50 });
  // The state machine is the list of applied payloads; its snapshot is that list as JSON.
  const applied: string[] = [];
  let node: RaftNode;
  try {
    node = await RaftNode.open({
      id,
      peers: [...IDS],
      dir,
      dek,
      transport,
      apply: (e) => applied.push(Buffer.from(e.data).toString('utf8')),
      restore: (snap) => {
        applied.length = 0;
        if (snap.data.byteLength > 0) applied.push(...(JSON.parse(Buffer.from(snap.data).toString('utf8')) as string[]));
      },
      ...(snapshots === undefined
        ? {}
        : {
            snapshotData: () => Buffer.from(JSON.stringify(applied)),
            snapshotIntervalEntries: snapshots.intervalEntries,
            snapshotKeepEntries: snapshots.keepEntries,
          }),
      tickMs: 10,
      electionTick: 10,
      heartbeatTick: 1,
      logger: silent,
    });
  } catch (err) {
    await transport.close(); // the node owns its transport only once it exists
    throw err;
  }
  live.add(node);
  return { node, transport, applied };
}

function connect(members: ReadonlyMap<NodeId, Member>): void {
  for (const [id, m] of members) for (const [other, o] of members) if (other !== id) m.transport.setPeer(other, o.transport.address);
}

/** Polls `probe` every 10 ms until it returns a value, at most `limitMs`. */
async function waitFor<T>(what: string, probe: () => T | undefined, limitMs = 10_000): Promise<T> {
  const start = performance.now();
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (performance.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The leader every live member agrees on. */
function agreedLeader(members: ReadonlyMap<NodeId, Member>): Member | undefined {
  const all = [...members.values()];
  const leaders = all.filter((m) => m.node.status().role === 'leader');
  if (leaders.length !== 1) return undefined;
  const id = leaders[0]!.node.id;
  return all.every((m) => m.node.status().leader === id) ? leaders[0] : undefined;
}

async function proposeAll(leader: Member, from: number, count: number): Promise<number[]> {
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) => leader.node.propose(Buffer.from(`op-${from + i}`))),
  );
  return results.map((r) => r.index);
}

describe('RaftNode over TCP with durable logs', () => {
  it('elects, replicates identically, survives the leader closing and catches a restarted node up', async () => {
    const dek = randomBytes(32);
    const dirOf = new Map<NodeId, string>();
    const members = new Map<NodeId, Member>();
    for (const id of IDS) {
      const dir = await mkdtemp(path.join(os.tmpdir(), `shoal-node-${id}-`));
      dirs.push(dir);
      dirOf.set(id, dir);
      members.set(id, await startMember(id, dir, dek));
    }
    connect(members);

    // Election, then 200 proposals on the leader: each resolves once applied there.
    const leader = await waitFor('a leader', () => agreedLeader(members));
    const indexes = await proposeAll(leader, 0, 200);
    expect(new Set(indexes).size).toBe(200);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    const expected = Array.from({ length: 200 }, (_, i) => `op-${i}`);
    expect(leader.applied).toEqual(expected);
    await waitFor('followers to apply 200 entries', () => ([...members.values()].every((m) => m.applied.length === 200) ? true : undefined));
    for (const m of members.values()) expect(m.applied).toEqual(expected);

    // A follower refuses proposals and names the leader; its reads wait for what the leader committed.
    const follower = [...members.values()].find((m) => m !== leader)!;
    const refused = await follower.node.propose(Buffer.from('nope')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ProposalRejectedError);
    expect(refused).toMatchObject({ code: 'ERR_RAFT_NOT_LEADER', leaderHint: leader.node.id });
    const read = await follower.node.readIndex();
    expect(read.index).toBeGreaterThanOrEqual(indexes[199]!);
    expect(follower.node.applied).toBeGreaterThanOrEqual(read.index);

    // The leader goes away: the other two elect a new one and keep committing.
    await leader.node.close();
    live.delete(leader.node);
    const oldId = leader.node.id;
    members.delete(oldId);
    const next = await waitFor('a new leader', () => agreedLeader(members));
    expect(next.node.id).not.toBe(oldId);
    await proposeAll(next, 200, 50);
    const expectedAll = Array.from({ length: 250 }, (_, i) => `op-${i}`);
    await waitFor('both survivors to apply 250 entries', () => ([...members.values()].every((m) => m.applied.length === 250) ? true : undefined));
    for (const m of members.values()) expect(m.applied).toEqual(expectedAll);

    // The old leader restarts from its directory: it rebuilds its state from its own log and
    // catches up on what it missed; new proposals reach it too.
    const back = await startMember(oldId, dirOf.get(oldId)!, dek);
    members.set(oldId, back);
    connect(members);
    await waitFor('the restarted node to catch up', () => (back.applied.length === 250 ? true : undefined));
    expect(back.applied).toEqual(expectedAll);
    const now = await waitFor('a leader after the restart', () => agreedLeader(members));
    await proposeAll(now, 250, 10);
    const expectedFinal = Array.from({ length: 260 }, (_, i) => `op-${i}`);
    await waitFor('all three to apply 260 entries', () => ([...members.values()].every((m) => m.applied.length === 260) ? true : undefined));
    for (const m of members.values()) expect(m.applied).toEqual(expectedFinal);
  });

  it('rotates its data key while proposals flow: the log reopens under the new key only', async () => {
    const oldDek = randomBytes(32);
    const newDek = randomBytes(32);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-node-rekey-'));
    dirs.push(dir);
    const members = new Map<NodeId, Member>();
    for (const id of IDS) {
      const d = id === 1 ? dir : await mkdtemp(path.join(os.tmpdir(), `shoal-node-rekey-${id}-`));
      if (id !== 1) dirs.push(d);
      members.set(id, await startMember(id, d, oldDek));
    }
    connect(members);
    const leader = await waitFor('a leader', () => agreedLeader(members));
    const one = members.get(1)!;
    // Rotation overlaps in-flight proposals; every one still commits and applies.
    const inFlight = proposeAll(leader, 0, 50);
    await one.node.rotateKey(newDek);
    await inFlight;
    await proposeAll(leader, 50, 10);
    await waitFor('node 1 to apply 60 entries', () => (one.applied.length === 60 ? true : undefined));
    await one.node.close();
    live.delete(one.node);
    members.delete(1);
    await expect(startMember(1, dir, oldDek)).rejects.toThrow();
    const back = await startMember(1, dir, newDek);
    members.set(1, back);
    connect(members);
    await waitFor('node 1 to rebuild 60 entries from its re-sealed log', () => (back.applied.length >= 60 ? true : undefined));
    expect(back.applied.slice(0, 60)).toEqual(Array.from({ length: 60 }, (_, i) => `op-${i}`));
  });

  it('compacts its log behind snapshots and brings a node that fell behind the compaction up to date with one', async () => {
    const dek = randomBytes(32);
    const policy: SnapshotPolicy = { intervalEntries: 40, keepEntries: 5 };
    const dirOf = new Map<NodeId, string>();
    const members = new Map<NodeId, Member>();
    for (const id of IDS) {
      const dir = await mkdtemp(path.join(os.tmpdir(), `shoal-node-snap-${id}-`));
      dirs.push(dir);
      dirOf.set(id, dir);
      members.set(id, await startMember(id, dir, dek, policy));
    }
    connect(members);
    const leader = await waitFor('a leader', () => agreedLeader(members));
    await proposeAll(leader, 0, 20);

    // A follower goes away; the others move on far past what it has, compacting as they go.
    const lagging = [...members.values()].find((m) => m !== leader)!;
    const lagId = lagging.node.id;
    await lagging.node.close();
    live.delete(lagging.node);
    members.delete(lagId);
    for (let i = 20; i < 200; i += 30) await proposeAll(leader, i, 30);
    const expected = Array.from({ length: 200 }, (_, i) => `op-${i}`);
    expect(leader.applied).toEqual(expected);
    await waitFor('the leader to compact', () => (leader.node.status().firstIndex > 100 ? true : undefined));

    // Back from its own directory: its log ends before the leader's first index, so only a
    // snapshot can catch it up; its state machine must end up the same.
    const back = await startMember(lagId, dirOf.get(lagId)!, dek, policy);
    members.set(lagId, back);
    connect(members);
    await waitFor('the lagging node to catch up through a snapshot', () => (back.applied.length === 200 ? true : undefined));
    expect(back.applied).toEqual(expected);
    expect(back.node.status().firstIndex).toBeGreaterThan(100);
    const now = await waitFor('a leader', () => agreedLeader(members));
    await proposeAll(now, 200, 5);
    await waitFor('everyone to apply 205 entries', () => ([...members.values()].every((m) => m.applied.length === 205) ? true : undefined));
    for (const m of members.values()) expect(m.applied).toEqual(Array.from({ length: 205 }, (_, i) => `op-${i}`));
  });

  it('rejects pending proposals when the node closes, and new calls afterwards', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-node-single-'));
    dirs.push(dir);
    const transport = await TcpTransport.listen({ id: 1, listen: { host: '127.0.0.1', port: 0 }, logger: silent });
    const node = await RaftNode.open({ id: 1, peers: [1], dir, dek: randomBytes(32), transport, apply: () => {}, tickMs: 10, logger: silent }).catch(
      async (err: unknown) => {
        await transport.close();
        throw err;
      },
    );
    live.add(node);
    await waitFor('single-node leadership', () => (node.status().role === 'leader' ? true : undefined));
    await expect(node.propose(Buffer.from('x'))).resolves.toMatchObject({ index: expect.any(Number) });
    await expect(node.propose(new Uint8Array(0))).rejects.toMatchObject({ code: 'ERR_RAFT_PROPOSAL_REJECTED', reason: 'emptyData' });
    const pending = node.propose(Buffer.from('y'));
    const closing = node.close();
    // Either it made it before the close or it is rejected as closed; it never hangs.
    const outcome = await pending.then(
      () => 'applied',
      (e: { code?: string }) => e.code,
    );
    expect(['applied', 'ERR_RAFT_NODE_CLOSED']).toContain(outcome);
    await closing;
    await expect(node.propose(Buffer.from('z'))).rejects.toMatchObject({ code: 'ERR_RAFT_NODE_CLOSED' });
  });
});
