// Beyond the paper's core: pre-vote and check-quorum (thesis §9.6, §6.2), pipelining and flow
// control, snapshots and compaction (§7), membership changes with learners (§6), leader transfer
// (thesis §3.10) and ReadIndex (thesis §6.4).
import { describe, expect, test } from 'vitest';
import { TestNet } from './testing/net.js';
import { SimCluster } from './testing/sim.js';
import type { Message, MsgApp, NodeId } from './types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (list: Uint8Array[]) => list.map((d) => dec.decode(d));

function electedSim(opts: Partial<ConstructorParameters<typeof SimCluster>[0]> = {}): { sim: SimCluster; leader: NodeId } {
  const sim = new SimCluster({ ids: [1, 2, 3], seed: 7, ...opts });
  for (let i = 0; i < 100 && sim.leader() === undefined; i++) sim.tick();
  sim.stabilize();
  const leader = sim.leader();
  if (leader === undefined) throw new Error('no leader elected');
  return { sim, leader };
}

function ticks(sim: SimCluster, n: number, id?: NodeId): void {
  for (let i = 0; i < n; i++) sim.tick(id);
}

function others(sim: SimCluster, id: NodeId): NodeId[] {
  return sim.ids().filter((x) => x !== id);
}

describe('pre-vote', () => {
  test('a partitioned node does not inflate its term, and rejoining does not depose the leader', () => {
    const { sim, leader } = electedSim({ preVote: true, checkQuorum: false });
    const term = sim.status(leader).term;
    const lone = others(sim, leader)[0]!;
    sim.isolate(lone);
    ticks(sim, 100);
    expect(sim.status(lone).term).toBe(term);
    expect(sim.status(lone).role).toBe('precandidate');
    sim.heal();
    ticks(sim, 5);
    sim.stabilize();
    expect(sim.leader()).toBe(leader);
    expect(sim.status(leader).term).toBe(term);
  });

  test('without pre-vote the same partitioned node forces a new election on rejoin', () => {
    const { sim, leader } = electedSim({ preVote: false, checkQuorum: false });
    const term = sim.status(leader).term;
    const lone = others(sim, leader)[0]!;
    sim.isolate(lone);
    ticks(sim, 100);
    expect(sim.status(lone).term).toBeGreaterThan(term + 3);
    sim.heal();
    ticks(sim, 60);
    sim.stabilize();
    expect(sim.status(sim.leader()!).term).toBeGreaterThan(term);
  });

  test('a node with a lagging log cannot win a pre-vote', () => {
    const { sim, leader } = electedSim({ preVote: true, checkQuorum: false });
    const lagging = others(sim, leader)[0]!;
    sim.isolate(lagging);
    for (let i = 0; i < 5; i++) sim.propose(leader, enc.encode(`p${i}`));
    sim.stabilize();
    // The leader dies; the lagging node comes back and times out first.
    sim.heal();
    sim.crash(leader);
    const term = sim.status(lagging).term;
    sim.campaign(lagging);
    sim.stabilize();
    expect(sim.status(lagging).role).not.toBe('leader');
    expect(sim.status(lagging).term).toBe(term);
    ticks(sim, 50);
    sim.stabilize();
    const newLeader = sim.leader();
    expect(newLeader).toBeDefined();
    expect(newLeader).not.toBe(lagging);
    expect(text(sim.applied(newLeader!))).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
  });
});

describe('check-quorum', () => {
  test('a leader that has not heard from a quorum within an election timeout steps down', () => {
    const { sim, leader } = electedSim({ checkQuorum: true });
    sim.isolate(leader);
    ticks(sim, 21, leader);
    expect(sim.status(leader).role).toBe('follower');
  });

  test('a leader with a live quorum stays leader', () => {
    const { sim, leader } = electedSim({ checkQuorum: true });
    ticks(sim, 100);
    expect(sim.leader()).toBe(leader);
  });

  test('followers that heard from the leader recently ignore a disruptive vote request', () => {
    const { sim, leader } = electedSim({ checkQuorum: true, preVote: false });
    const term = sim.status(leader).term;
    const f = others(sim, leader)[0]!;
    const r = sim.raft(f)!;
    r.step({ type: 'vote', from: 99, to: f, term: term + 10, index: 1000, logTerm: 1000, transfer: false });
    expect(sim.status(f).term).toBe(term);
    expect(sim.status(f).leader).toBe(leader);
  });

  test('a candidate stuck at a higher term is freed: the stale leader learns the term and steps down', () => {
    const { sim, leader } = electedSim({ checkQuorum: true, preVote: false });
    const term = sim.status(leader).term;
    const lone = others(sim, leader)[0]!;
    sim.isolate(lone);
    ticks(sim, 60, lone);
    expect(sim.status(lone).term).toBeGreaterThan(term);
    sim.heal();
    // The leader's heartbeat reaches the candidate, which answers with its higher term.
    ticks(sim, 3);
    sim.stabilize();
    ticks(sim, 60);
    sim.stabilize();
    const l = sim.leader();
    expect(l).toBeDefined();
    expect(sim.status(l!).term).toBeGreaterThanOrEqual(sim.status(lone).term);
    expect(sim.propose(l!, enc.encode('after')).ok).toBe(true);
    sim.stabilize();
    for (const id of sim.ids()) expect(text(sim.applied(id))).toContain('after');
  });
});

describe('pipelining and flow control', () => {
  function leaderNet(opts: { maxInflightMsgs?: number; maxSizePerMsg?: number } = {}): TestNet {
    const net = new TestNet([{ id: 1 }, { id: 2 }, { id: 3 }], opts);
    net.raft(1).campaign();
    net.stabilize();
    return net;
  }

  test('a replicating follower gets up to maxInflightMsgs appends without waiting for acks, then the leader pauses', () => {
    const net = leaderNet({ maxInflightMsgs: 4, maxSizePerMsg: 1 });
    const apps: MsgApp[] = [];
    for (let i = 0; i < 10; i++) {
      net.raft(1).propose(enc.encode(`x${i}`));
      apps.push(...(net.take((m) => m.type === 'app' && m.to === 2) as MsgApp[]));
    }
    expect(apps.length).toBe(4);
    expect(apps.map((m) => m.entries.length)).toEqual([1, 1, 1, 1]);
    // One ack frees the window: the leader sends more.
    const ack = { type: 'appResp', from: 2, to: 1, term: net.raft(1).status().term, index: apps[1]!.entries[0]!.index, reject: false, rejectHint: 0, logTerm: 0 } as const;
    net.raft(1).step(ack);
    const more = net.take((m) => m.type === 'app' && m.to === 2) as MsgApp[];
    expect(more.length).toBe(2);
  });

  test('appends are capped at maxSizePerMsg bytes, but always carry at least one entry', () => {
    const net = leaderNet({ maxSizePerMsg: 300 });
    net.blackhole(2);
    for (let i = 0; i < 6; i++) net.raft(1).propose(new Uint8Array(200));
    net.flush();
    net.queue = [];
    net.raft(1).reportUnreachable(3);
    net.raft(1).tick();
    net.raft(1).step({ type: 'heartbeatResp', from: 3, to: 1, term: net.raft(1).status().term, context: null });
    const apps = net.take((m) => m.type === 'app' && m.to === 3) as MsgApp[];
    expect(apps.length).toBeGreaterThan(0);
    for (const m of apps) expect(m.entries.length).toBeLessThanOrEqual(1);
  });

  test('a follower in probe state gets one append per heartbeat until it answers', () => {
    const net = leaderNet();
    net.blackhole(2);
    net.raft(1).reportUnreachable(2);
    net.raft(1).propose(enc.encode('a'));
    net.raft(1).propose(enc.encode('b'));
    const first = net.take((m) => m.type === 'app' && m.to === 2);
    expect(first.length).toBe(1);
    net.raft(1).propose(enc.encode('c'));
    expect(net.take((m) => m.type === 'app' && m.to === 2).length).toBe(0);
    net.raft(1).tick();
    const term = net.raft(1).status().term;
    net.raft(1).step({ type: 'heartbeatResp', from: 2, to: 1, term, context: null });
    expect(net.take((m) => m.type === 'app' && m.to === 2).length).toBe(1);
  });

  test('many proposals between two Readys go to each follower in one append', () => {
    const net = leaderNet();
    for (let i = 0; i < 50; i++) net.raft(1).propose(enc.encode(`p${i}`));
    const apps = net.take((m) => m.type === 'app') as MsgApp[];
    expect(apps.length).toBe(2);
    for (const m of apps) expect(m.entries.length).toBe(50);
  });
});

describe('snapshots and compaction (§7)', () => {
  test('a follower too far behind gets the snapshot, then the log after it', () => {
    const { sim, leader } = electedSim();
    const lagging = others(sim, leader)[0]!;
    sim.crash(lagging);
    for (let i = 0; i < 30; i++) sim.propose(leader, enc.encode(`e${i}`));
    sim.stabilize();
    for (const id of sim.ids()) if (sim.isAlive(id)) sim.compact(id, 0);
    expect(sim.raft(leader)!.status().firstIndex).toBeGreaterThan(10);
    for (let i = 30; i < 35; i++) sim.propose(leader, enc.encode(`e${i}`));
    sim.restart(lagging);
    ticks(sim, 3);
    sim.stabilize();
    expect(text(sim.applied(lagging))).toEqual(Array.from({ length: 35 }, (_, i) => `e${i}`));
    expect(sim.status(lagging).commit).toBe(sim.status(leader).commit);
  });

  test('a restarted node rebuilds its state from its snapshot and the log after it', () => {
    const sim = new SimCluster({ ids: [1, 2, 3], seed: 3, snapshotEvery: 10, snapshotKeep: 2 });
    ticks(sim, 30);
    const leader = sim.leader()!;
    for (let i = 0; i < 25; i++) sim.propose(leader, enc.encode(`v${i}`));
    sim.stabilize();
    const before = text(sim.applied(2));
    sim.crash(2);
    sim.restart(2);
    sim.stabilize();
    expect(text(sim.applied(2))).toEqual(before);
    expect(before.length).toBe(25);
  });

  test('a snapshot the follower already covers is not restored over newer entries', () => {
    const net = new TestNet([{ id: 1, terms: [1, 1, 1, 1], hardState: { term: 1, vote: null, commit: 4 } }, { id: 2 }, { id: 3 }]);
    net.raft(1).step({
      type: 'snap',
      from: 2,
      to: 1,
      term: 1,
      snapshot: { metadata: { index: 2, term: 1, confState: { voters: [1, 2, 3], learners: [] } }, data: new Uint8Array(0) },
    });
    const [resp] = net.take((m) => m.type === 'appResp');
    expect(resp).toMatchObject({ index: 4, reject: false });
    expect(net.raft(1).status().lastIndex).toBe(4);
  });
});

describe('membership (§6): one server at a time, learners first', () => {
  test('a new node joins as a learner, catches up, and is promoted to voter', () => {
    const { sim, leader } = electedSim();
    for (let i = 0; i < 10; i++) sim.propose(leader, enc.encode(`m${i}`));
    sim.stabilize();
    expect(sim.addNode(4)).toBe(true);
    expect(sim.status(leader).voters.sort()).toEqual([1, 2, 3, 4]);
    expect(sim.status(4).voters.sort()).toEqual([1, 2, 3, 4]);
    expect(text(sim.applied(4))).toEqual(text(sim.applied(leader)));
  });

  test('a learner receives the log but does not count toward the commit quorum and never campaigns', () => {
    const { sim, leader } = electedSim();
    const r = sim.raft(leader)!;
    expect(r.proposeConfChange({ type: 'addLearner', nodeId: 1 === leader ? 2 : 1 }).ok).toBe(true);
    sim.stabilize();
    // Turn a voter into a learner, leaving 2 voters; then lose the other voter.
    const learner = 1 === leader ? 2 : 1;
    expect(sim.status(leader).learners).toEqual([learner]);
    expect(sim.status(learner).role).toBe('learner');
    const otherVoter = sim.status(leader).voters.find((v) => v !== leader)!;
    sim.crash(otherVoter);
    const commit = sim.status(leader).commit;
    sim.propose(leader, enc.encode('needs-two-voters'));
    sim.stabilize();
    expect(sim.status(leader).commit).toBe(commit);
    expect(sim.status(learner).lastIndex).toBe(sim.status(leader).lastIndex);
    // The learner never campaigns, however long it waits.
    sim.crash(leader);
    ticks(sim, 100, learner);
    expect(sim.status(learner).role).toBe('learner');
  });

  test('a second configuration change is refused while one is pending', () => {
    const { sim, leader } = electedSim();
    const r = sim.raft(leader)!;
    expect(r.proposeConfChange({ type: 'addLearner', nodeId: 4 }).ok).toBe(true);
    expect(r.proposeConfChange({ type: 'addLearner', nodeId: 5 })).toMatchObject({ ok: false, reason: 'confChangePending' });
  });

  test('removing a follower shrinks the quorum: two of three can commit after one of four is removed', () => {
    const sim = new SimCluster({ ids: [1, 2, 3, 4], seed: 11 });
    ticks(sim, 40);
    const leader = sim.leader()!;
    const [a, b] = others(sim, leader);
    expect(sim.removeNode(a!)).toBe(true);
    sim.crash(b!);
    expect(sim.propose(leader, enc.encode('with-2-of-3')).ok).toBe(true);
    sim.stabilize();
    expect(text(sim.applied(leader))).toContain('with-2-of-3');
  });

  test('removing the leader: it commits its removal, steps down, and the rest elect a new leader', () => {
    const { sim, leader } = electedSim();
    sim.propose(leader, enc.encode('before'));
    expect(sim.removeNode(leader)).toBe(true);
    expect(sim.status(leader).role).toBe('follower');
    ticks(sim, 40);
    const next = sim.leader();
    expect(next).toBeDefined();
    expect(next).not.toBe(leader);
    expect(sim.status(next!).voters).toHaveLength(2);
    expect(sim.propose(next!, enc.encode('after')).ok).toBe(true);
    sim.stabilize();
    for (const id of sim.status(next!).voters) expect(text(sim.applied(id))).toEqual(['before', 'after']);
  });

  test('a node does not campaign while committed configuration changes are unapplied', () => {
    const net = new TestNet([{ id: 1 }, { id: 2 }, { id: 3 }]);
    net.raft(1).campaign();
    net.stabilize();
    net.raft(1).proposeConfChange({ type: 'addLearner', nodeId: 4 });
    // Deliver the append and the commit to node 2 without letting it process its Ready.
    for (let i = 0; i < 4; i++) {
      const msgs = net.take();
      for (const m of msgs) net.deliver(m);
    }
    const r2 = net.raft(2);
    // Node 2 has processed everything: no unapplied change, so it campaigns.
    const term = r2.status().term;
    r2.campaign();
    expect(r2.status().term).toBeGreaterThan(term);
  });
});

describe('leader transfer', () => {
  test('to an up-to-date follower: it becomes leader at once', () => {
    const { sim, leader } = electedSim();
    const target = others(sim, leader)[0]!;
    sim.transferLeader(leader, target);
    expect(sim.leader()).toBe(target);
  });

  test('to a slow follower: the leader catches it up first, then sends timeout-now', () => {
    const { sim, leader } = electedSim();
    const target = others(sim, leader)[0]!;
    sim.isolate(target);
    for (let i = 0; i < 20; i++) sim.propose(leader, enc.encode(`t${i}`));
    sim.stabilize();
    sim.heal();
    sim.transferLeader(leader, target);
    ticks(sim, 3);
    sim.stabilize();
    expect(sim.leader()).toBe(target);
    expect(text(sim.applied(target))).toHaveLength(20);
  });

  test('proposals are refused while a transfer is in progress, and the transfer times out', () => {
    const { sim, leader } = electedSim();
    const target = others(sim, leader)[0]!;
    sim.crash(target);
    sim.raft(leader)!.transferLeader(target);
    expect(sim.propose(leader, enc.encode('x'))).toMatchObject({ ok: false });
    expect(sim.raft(leader)!.status().leadTransferee).toBe(target);
    ticks(sim, 11, leader);
    expect(sim.raft(leader)!.status().leadTransferee).toBeNull();
    expect(sim.propose(leader, enc.encode('y')).ok).toBe(true);
  });

  test('a transfer requested on a follower is forwarded to the leader', () => {
    const { sim, leader } = electedSim();
    const [f, target] = others(sim, leader);
    sim.transferLeader(f!, target!);
    expect(sim.leader()).toBe(target);
  });

  test('a transfer to a non-member or to the leader itself is ignored', () => {
    const { sim, leader } = electedSim();
    sim.transferLeader(leader, 42);
    sim.transferLeader(leader, leader);
    expect(sim.leader()).toBe(leader);
    expect(sim.propose(leader, enc.encode('ok')).ok).toBe(true);
  });
});

describe('ReadIndex', () => {
  test('the leader answers with its commit index after a quorum round, without writing to the log', () => {
    const { sim, leader } = electedSim();
    sim.propose(leader, enc.encode('w'));
    sim.stabilize();
    const last = sim.status(leader).lastIndex;
    expect(sim.readIndex(leader)).toBe(sim.status(leader).commit);
    expect(sim.status(leader).lastIndex).toBe(last);
  });

  test('a deposed leader cut off from the quorum cannot confirm a read', () => {
    const { sim, leader } = electedSim({ checkQuorum: false });
    sim.isolate(leader);
    expect(() => sim.readIndex(leader)).toThrow(/not confirmed/);
  });

  test('a follower gets a read index through the leader', () => {
    const { sim, leader } = electedSim();
    sim.propose(leader, enc.encode('w'));
    sim.stabilize();
    const f = others(sim, leader)[0]!;
    expect(sim.readIndex(f)).toBe(sim.status(leader).commit);
  });

  test('a new leader answers reads only after committing an entry of its own term', () => {
    const net = new TestNet([{ id: 1 }, { id: 2 }, { id: 3 }]);
    net.raft(1).campaign();
    // Deliver the votes but not the appends carrying the no-op.
    for (const m of net.take()) net.deliver(m);
    for (const m of net.take()) net.deliver(m);
    expect(net.raft(1).status().role).toBe('leader');
    net.raft(1).readIndex('r1');
    const pending = net.take();
    expect(pending.some((m: Message) => m.type === 'heartbeat' && m.context === 'r1')).toBe(false);
    for (const m of pending) net.deliver(m);
    net.stabilize();
    expect(net.node(1).readStates).toEqual([{ index: net.raft(1).status().commit, context: 'r1' }]);
    expect(net.raft(1).status().commit).toBeGreaterThan(0);
  });
});
