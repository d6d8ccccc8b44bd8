// The Raft paper's claims (Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm", §5), one named test each, driven message by message.
import { describe, expect, test } from 'vitest';
import { MemoryStorage } from './log-storage.js';
import { RawNode } from './raft.js';
import { seededRandom } from './prng.js';
import { TestNet, entriesWithTerms } from './testing/net.js';
import type { Message, MsgApp, MsgAppResp, MsgVote } from './types.js';

const enc = new TextEncoder();
const ofType =
  <T extends Message['type']>(t: T) =>
  (m: Message): m is Message & { type: T } =>
    m.type === t;

/** Three (or n) nodes with empty logs at term 0, pre-vote and check-quorum off (the paper's base algorithm). */
function cluster(n = 3): TestNet {
  return new TestNet(Array.from({ length: n }, (_, i) => ({ id: i + 1 })));
}

function elect(net: TestNet, id: number): void {
  net.raft(id).campaign();
  net.stabilize();
  expect(net.raft(id).status().role).toBe('leader');
}

describe('§5.1 terms', () => {
  test.each(['follower', 'candidate', 'leader'] as const)('a %s seeing a higher term becomes a follower at that term', (role) => {
    const net = cluster();
    const r = net.raft(1);
    if (role === 'candidate') r.campaign();
    if (role === 'leader') elect(net, 1);
    const term = r.status().term;
    r.step({ type: 'app', from: 2, to: 1, term: term + 5, index: 0, logTerm: 0, entries: [], commit: 0 });
    expect(r.status()).toMatchObject({ role: 'follower', term: term + 5, leader: 2 });
  });

  test('a message with a stale term is ignored', () => {
    const net = cluster();
    elect(net, 1);
    const f = net.raft(2);
    const before = f.status();
    f.step({ type: 'app', from: 3, to: 2, term: before.term - 1, index: 0, logTerm: 0, entries: entriesWithTerms([1]), commit: 1 });
    expect(f.status()).toMatchObject({ term: before.term, leader: before.leader, lastIndex: before.lastIndex, commit: before.commit });
  });
});

describe('§5.2 leader election', () => {
  test('nodes start as followers', () => {
    const net = cluster();
    for (const id of [1, 2, 3]) expect(net.raft(id).status()).toMatchObject({ role: 'follower', term: 0, leader: null });
  });

  test('a leader sends heartbeats to every peer every heartbeat tick', () => {
    const net = cluster();
    elect(net, 1);
    net.take();
    net.raft(1).tick();
    const hbs = net.take(ofType('heartbeat'));
    expect(hbs.map((m) => m.to).sort()).toEqual([2, 3]);
    expect(hbs.every((m) => m.term === net.raft(1).status().term)).toBe(true);
  });

  test('a follower that hears nothing for an election timeout becomes candidate: term+1, votes for itself, asks every peer', () => {
    const net = new TestNet([{ id: 1, terms: [1, 1, 2] }, { id: 2 }, { id: 3 }]);
    const r = net.raft(1);
    for (let i = 0; i < 20 && r.status().role === 'follower'; i++) r.tick();
    expect(r.status()).toMatchObject({ role: 'candidate', term: 3, vote: 1 });
    const votes = net.take(ofType('vote')) as MsgVote[];
    expect(votes.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const v of votes) expect(v).toMatchObject({ term: 3, index: 3, logTerm: 2 });
  });

  test('a candidate that times out starts a new election with a higher term', () => {
    const net = cluster();
    const r = net.raft(1);
    r.campaign();
    expect(r.status().term).toBe(1);
    for (let i = 0; i < 20 && r.status().term === 1; i++) r.tick();
    expect(r.status()).toMatchObject({ role: 'candidate', term: 2 });
  });

  test('election timeouts are randomized over [electionTick, 2·electionTick)', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 200; seed++) {
      const r = new RawNode({ id: 1, storage: new MemoryStorage({ voters: [1, 2, 3], learners: [] }), electionTick: 10, heartbeatTick: 1, preVote: false, random: seededRandom(seed) });
      let ticks = 0;
      while (r.status().role === 'follower' && ticks < 100) {
        r.tick();
        ticks++;
      }
      seen.add(ticks);
    }
    expect(Math.min(...seen)).toBe(10);
    expect(Math.max(...seen)).toBe(19);
    expect(seen.size).toBe(10);
  });

  test('timeouts rarely collide: in a 5-node cluster most rounds have a single first timer', () => {
    let collisions = 0;
    const rounds = 300;
    for (let round = 0; round < rounds; round++) {
      const firsts: number[] = [];
      for (let id = 1; id <= 5; id++) {
        const r = new RawNode({ id, storage: new MemoryStorage({ voters: [1, 2, 3, 4, 5], learners: [] }), electionTick: 10, heartbeatTick: 1, preVote: false, random: seededRandom(`${round}-${id}`) });
        let t = 0;
        while (r.status().role === 'follower' && t < 100) {
          r.tick();
          t++;
        }
        firsts.push(t);
      }
      const min = Math.min(...firsts);
      if (firsts.filter((t) => t === min).length > 1) collisions++;
    }
    expect(collisions / rounds).toBeLessThanOrEqual(0.3);
  });

  // Rows: cluster size, granted votes (besides self), rejected votes, expected role.
  test.each([
    [3, [2], [], 'leader'],
    [3, [2, 3], [], 'leader'],
    [3, [], [], 'candidate'],
    [5, [2, 3], [], 'leader'],
    [5, [2], [], 'candidate'],
    [5, [2], [3, 4], 'candidate'],
    [5, [], [2, 3, 4], 'follower'],
    [5, [2], [3, 4, 5], 'follower'],
    [3, [], [2, 3], 'follower'],
    [3, [], [2], 'candidate'],
  ] as const)('election in one round: %d nodes, granted %j, rejected %j → %s', (size, granted, rejected, expected) => {
    const net = cluster(size);
    const r = net.raft(1);
    r.campaign();
    const term = r.status().term;
    for (const from of granted) r.step({ type: 'voteResp', from, to: 1, term, reject: false });
    for (const from of rejected) r.step({ type: 'voteResp', from, to: 1, term, reject: true });
    expect(r.status().role).toBe(expected);
    expect(r.status().term).toBe(term);
  });

  test('a follower votes at most once per term, first come first served', () => {
    const net = cluster();
    const f = net.raft(1);
    f.step({ type: 'vote', from: 2, to: 1, term: 1, index: 0, logTerm: 0, transfer: false });
    f.step({ type: 'vote', from: 3, to: 1, term: 1, index: 0, logTerm: 0, transfer: false });
    f.step({ type: 'vote', from: 2, to: 1, term: 1, index: 0, logTerm: 0, transfer: false });
    const resps = net.take(ofType('voteResp'));
    expect(resps.map((m) => [m.to, m.reject])).toEqual([
      [2, false],
      [3, true],
      [2, false],
    ]);
    expect(f.status().vote).toBe(2);
  });

  test('a vote is persisted in the same Ready that carries the vote response', () => {
    const net = cluster();
    const f = net.raft(1);
    f.step({ type: 'vote', from: 2, to: 1, term: 4, index: 0, logTerm: 0, transfer: false });
    const rd = f.ready();
    expect(rd.hardState).toMatchObject({ term: 4, vote: 2 });
    expect(rd.mustSync).toBe(true);
    expect(rd.messages.filter(ofType('voteResp'))).toHaveLength(1);
    f.advance();
  });

  test('a candidate receiving an append from a leader of its term steps back to follower', () => {
    const net = cluster();
    const r = net.raft(1);
    r.campaign();
    const term = r.status().term;
    r.step({ type: 'app', from: 2, to: 1, term, index: 0, logTerm: 0, entries: [], commit: 0 });
    expect(r.status()).toMatchObject({ role: 'follower', leader: 2, term });
  });

  test('a restarted node remembers its vote and does not vote twice in a term', () => {
    const net = cluster();
    net.raft(1).step({ type: 'vote', from: 2, to: 1, term: 3, index: 0, logTerm: 0, transfer: false });
    net.take();
    net.restart(1);
    net.raft(1).step({ type: 'vote', from: 3, to: 1, term: 3, index: 0, logTerm: 0, transfer: false });
    const resps = net.take(ofType('voteResp'));
    expect(resps).toHaveLength(1);
    expect(resps[0]).toMatchObject({ to: 3, reject: true });
  });
});

describe('§5.3 log replication', () => {
  test('the leader appends a proposal and sends it to every follower with the previous (index, term)', () => {
    const net = cluster();
    elect(net, 1);
    const before = net.raft(1).status().lastIndex;
    const res = net.raft(1).propose(enc.encode('x'));
    expect(res).toMatchObject({ ok: true, index: before + 1 });
    const apps = net.take(ofType('app')) as MsgApp[];
    expect(apps.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const m of apps) {
      expect(m.index).toBe(before);
      expect(m.logTerm).toBe(net.raft(1).status().term);
      expect(m.entries.map((e) => new TextDecoder().decode(e.data))).toEqual(['x']);
    }
  });

  test('an entry commits once a majority stores it, and followers learn the commit and apply in order', () => {
    const net = cluster(5);
    elect(net, 1);
    net.blackhole(4);
    net.blackhole(5);
    for (const s of ['a', 'b', 'c']) net.raft(1).propose(enc.encode(s));
    net.stabilize();
    const last = net.raft(1).status().lastIndex;
    expect(net.raft(1).status().commit).toBe(last);
    for (const id of [1, 2, 3]) {
      const data = net.node(id).applied.filter((e) => e.type === 'normal' && e.data.length > 0).map((e) => new TextDecoder().decode(e.data));
      expect(data).toEqual(['a', 'b', 'c']);
    }
  });

  test('with only a minority storing it, an entry does not commit', () => {
    const net = cluster(5);
    elect(net, 1);
    const commit = net.raft(1).status().commit;
    for (const id of [3, 4, 5]) net.blackhole(id);
    net.raft(1).propose(enc.encode('x'));
    net.stabilize();
    expect(net.raft(1).status().commit).toBe(commit);
  });

  test('committing an entry commits every preceding entry, including those of earlier leaders', () => {
    const net = new TestNet([{ id: 1, terms: [1, 1] }, { id: 2, terms: [1] }, { id: 3, terms: [1] }]);
    elect(net, 1);
    net.stabilize();
    // Index 2 (term 1) commits together with the new leader's no-op at index 3.
    expect(net.raft(2).status().commit).toBe(3);
    expect(net.terms(2)).toEqual([1, 1, 2]);
  });

  test('a follower rejects an append whose previous entry does not match, with a hint', () => {
    const net = new TestNet([{ id: 1, terms: [1, 1, 2, 2] }, { id: 2 }, { id: 3 }]);
    const f = net.raft(1);
    f.step({ type: 'app', from: 2, to: 1, term: 3, index: 4, logTerm: 3, entries: [], commit: 0 });
    const [resp] = net.take(ofType('appResp')) as MsgAppResp[];
    // The hint: the largest index ≤ 4 whose term is ≤ the probe's term 3 — index 4 itself (term 2).
    expect(resp).toMatchObject({ reject: true, index: 4, rejectHint: 4, logTerm: 2 });
    // Probing with term 1 at index 4 skips the whole term-2 run: back to index 2 (term 1).
    f.step({ type: 'app', from: 2, to: 1, term: 3, index: 4, logTerm: 1, entries: [], commit: 0 });
    const [resp2] = net.take(ofType('appResp')) as MsgAppResp[];
    expect(resp2).toMatchObject({ reject: true, index: 4, rejectHint: 2, logTerm: 1 });
  });

  test('a follower deletes conflicting entries and appends the leader\'s', () => {
    const net = new TestNet([{ id: 1, terms: [1, 2, 2] }, { id: 2 }, { id: 3 }]);
    const f = net.raft(1);
    f.step({ type: 'app', from: 2, to: 1, term: 3, index: 1, logTerm: 1, entries: entriesWithTerms([3, 3], 2), commit: 1 });
    const [resp] = net.take(ofType('appResp')) as MsgAppResp[];
    expect(resp).toMatchObject({ reject: false, index: 3 });
    expect(net.terms(1)).toEqual([1, 3, 3]);
  });

  // Figure 7: a leader for term 8 and six possible follower logs (a)–(f).
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  test.each([
    ['a: missing entries', [1, 1, 1, 4, 4, 5, 5, 6, 6]],
    ['b: missing many entries', [1, 1, 1, 4]],
    ['c: extra uncommitted entry of the current-ish term', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
    ['d: extra entries of a later term', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
    ['e: missing and extra entries', [1, 1, 1, 4, 4, 4, 4]],
    ['f: entries of terms the leader never saw', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
  ])('Figure 7 (%s): the leader brings the follower\'s log to its own', (_name, followerTerms) => {
    const net = new TestNet(
      [
        { id: 1, terms: leaderTerms, hardState: { term: 8, vote: null, commit: 0 } },
        { id: 2, terms: followerTerms, hardState: { term: 8, vote: null, commit: 0 } },
        { id: 3, hardState: { term: 8, vote: null, commit: 0 } },
      ],
      {},
    );
    net.blackhole(3);
    const lead = net.raft(1);
    lead.campaign();
    // Node 3 votes for the leader (a follower with log d would refuse, being more up to date).
    lead.step({ type: 'voteResp', from: 3, to: 1, term: 9, reject: false });
    expect(lead.status().role).toBe('leader');
    lead.propose(enc.encode('new'));
    net.stabilize();
    expect(net.terms(2)).toEqual(net.terms(1));
    expect(net.terms(1)).toEqual([...leaderTerms, 9, 9]);
  });

  test('fast back-off: a follower with a long divergent tail is repaired in a few round trips', () => {
    const divergent = Array.from({ length: 200 }, () => 2);
    const net = new TestNet([
      { id: 1, terms: [1, ...Array.from({ length: 200 }, () => 3)], hardState: { term: 3, vote: null, commit: 1 } },
      { id: 2, terms: [1, ...divergent], hardState: { term: 3, vote: null, commit: 1 } },
      { id: 3, terms: [1, ...Array.from({ length: 200 }, () => 3)], hardState: { term: 3, vote: null, commit: 1 } },
    ]);
    elect(net, 1);
    let rejections = 0;
    for (let round = 0; round < 50; round++) {
      const msgs = net.take();
      if (msgs.length === 0) break;
      rejections += msgs.filter((m) => m.type === 'appResp' && m.reject && m.from === 2).length;
      for (const m of msgs) net.deliver(m);
    }
    expect(net.terms(2)).toEqual(net.terms(1));
    expect(rejections).toBeLessThanOrEqual(2);
  });
});

describe('§5.4 safety', () => {
  test.each([
    ['higher last term wins the vote', 3, 2, false],
    ['equal last term and longer log wins', 5, 1, false],
    ['equal last term and equal log wins', 4, 1, false],
    ['equal last term and shorter log is refused', 3, 1, true],
    ['lower last term is refused', 9, 0, true],
  ])('§5.4.1 election restriction: %s', (_name, lastIndex, lastTermOffset, reject) => {
    // The voter's log: terms [1, 1, 1, 2] (last index 4, last term 2).
    const net = new TestNet([{ id: 1, terms: [1, 1, 1, 2] }, { id: 2 }, { id: 3 }]);
    const lastTerm = lastTermOffset === 0 ? 1 : lastTermOffset === 1 ? 2 : 3;
    net.raft(1).step({ type: 'vote', from: 2, to: 1, term: 5, index: lastIndex, logTerm: lastTerm, transfer: false });
    const [resp] = net.take(ofType('voteResp'));
    expect(resp!.reject).toBe(reject);
  });

  test('§5.4.2 (Figure 8): a leader does not commit an entry of an earlier term by counting replicas', () => {
    // Leader-to-be holds (2, term 2) from a failed earlier leader; followers hold only index 1.
    const net = new TestNet([
      { id: 1, terms: [1, 2], hardState: { term: 2, vote: null, commit: 1 } },
      { id: 2, terms: [1], hardState: { term: 2, vote: null, commit: 1 } },
      { id: 3, terms: [1], hardState: { term: 2, vote: null, commit: 1 } },
    ]);
    const lead = net.raft(1);
    lead.campaign();
    lead.step({ type: 'voteResp', from: 2, to: 1, term: 3, reject: false });
    expect(lead.status().role).toBe('leader');
    net.take();
    // Follower 2 acknowledges index 2 only: a majority (1, 2) stores the term-2 entry...
    lead.step({ type: 'appResp', from: 2, to: 1, term: 3, index: 2, reject: false, rejectHint: 0, logTerm: 0 });
    net.flush();
    // ...yet it must not be committed: a later leader could still overwrite it (Figure 8 c–d).
    expect(lead.status().commit).toBe(1);
    // Once an entry of the current term (the no-op at 3) is on a majority, both commit.
    lead.step({ type: 'appResp', from: 2, to: 1, term: 3, index: 3, reject: false, rejectHint: 0, logTerm: 0 });
    net.flush();
    expect(lead.status().commit).toBe(3);
  });

  test('Figure 8 end to end: an old-term entry stored on a majority is not committed, and is later overwritten', () => {
    // One entry per append message, so deliveries can be cut between entries.
    const ids = [1, 2, 3, 4, 5];
    const net = new TestNet(ids.map((id) => ({ id, terms: [1], hardState: { term: 1, vote: null, commit: 1 } })), { maxSizePerMsg: 1 });
    /** Delivers messages among `group` that pass `keep` until quiet; drops everything else. */
    const exchange = (group: number[], keep: (m: Message) => boolean = () => true): void => {
      for (let i = 0; i < 200; i++) {
        const msgs = net.take();
        if (msgs.length === 0) return;
        for (const m of msgs) if (group.includes(m.from as number) && group.includes(m.to as number) && keep(m)) net.deliver(m);
      }
    };
    /** Keeps appends that cannot land an entry beyond `max` (those the receiver would reject may pass). */
    const noEntryBeyond = (max: number) => (m: Message) =>
      m.type !== 'app' || m.entries.every((e) => e.index <= max) || net.terms(m.to)[m.index - 1] !== m.logTerm;

    // (a) S1 leads term 2 (votes of S2, S3) and its no-op (2, t2) reaches S2 only.
    net.raft(1).campaign();
    exchange([1, 2, 3], (m) => m.type !== 'app' || m.to === 2);
    expect(net.raft(1).status()).toMatchObject({ role: 'leader', term: 2 });
    expect(net.terms(2)).toEqual([1, 2]);
    // (b) S1 is down. S5 wins term 3 with S3 and S4 and writes (2, t3) to itself alone.
    net.raft(5).campaign();
    exchange([3, 4, 5], (m) => m.type !== 'app');
    net.raft(5).campaign();
    exchange([3, 4, 5], (m) => m.type !== 'app');
    expect(net.raft(5).status()).toMatchObject({ role: 'leader', term: 3 });
    expect(net.terms(5)).toEqual([1, 3]);
    // (c) S5 is down; S1 restarts (a follower again) and wins term 4 and copies (2, t2) to S3 and S4: a majority stores it.
    net.restart(1);
    net.raft(1).campaign();
    exchange([1, 2, 3, 4], (m) => m.type !== 'app');
    net.raft(1).campaign();
    exchange([1, 2, 3, 4], (m) => m.type !== 'app');
    expect(net.raft(1).status()).toMatchObject({ role: 'leader', term: 4 });
    for (let i = 0; i < 5; i++) {
      net.raft(1).tick();
      exchange([1, 3, 4], noEntryBeyond(2));
    }
    expect(net.terms(3)).toEqual([1, 2]);
    expect(net.terms(4)).toEqual([1, 2]);
    // Counting replicas would commit index 2 here. It must not: it is not from term 4.
    expect(net.raft(1).status().commit).toBe(1);
    // (d) S1 is down; S5 restarts and wins term 5 (its last term 3 beats their 2), overwriting index 2.
    net.restart(5);
    net.raft(5).campaign();
    exchange([2, 3, 4, 5], (m) => m.type !== 'app');
    net.raft(5).campaign();
    exchange([2, 3, 4, 5]);
    expect(net.raft(5).status()).toMatchObject({ role: 'leader', term: 5 });
    for (const id of [2, 3, 4, 5]) expect(net.terms(id).slice(0, 2)).toEqual([1, 3]);
    // Nobody ever applied the overwritten (2, t2).
    for (const id of ids) for (const e of net.node(id).applied) if (e.index === 2) expect(e.term).toBe(3);
    expect(net.node(5).applied.some((e) => e.index === 2 && e.term === 3)).toBe(true);
  });
});

describe('proposals', () => {
  test('a proposal on a follower is refused with the known leader, never silently dropped', () => {
    const net = cluster();
    elect(net, 1);
    expect(net.raft(2).propose(enc.encode('x'))).toEqual({ ok: false, reason: 'notLeader', leaderHint: 1 });
  });

  test('a proposal with no known leader is refused with no hint', () => {
    const net = cluster();
    expect(net.raft(2).propose(enc.encode('x'))).toEqual({ ok: false, reason: 'notLeader', leaderHint: null });
  });

  test('the leader appends an empty no-op entry of its term when elected', () => {
    const net = cluster();
    elect(net, 1);
    const s = net.raft(1).status();
    const last = net.node(1).storage.entries(s.lastIndex, s.lastIndex + 1, 1e9)[0]!;
    expect(last).toMatchObject({ term: s.term, type: 'normal' });
    expect(last.data.byteLength).toBe(0);
    expect(s.commit).toBe(s.lastIndex);
  });

  test('the uncommitted tail is bounded: proposals are refused beyond maxUncommittedBytes', () => {
    const net = new TestNet([{ id: 1 }, { id: 2 }, { id: 3 }], { maxUncommittedBytes: 1000 });
    elect(net, 1);
    net.blackhole(2);
    net.blackhole(3);
    let accepted = 0;
    for (let i = 0; i < 100; i++) if (net.raft(1).propose(new Uint8Array(100)).ok) accepted++;
    expect(accepted).toBe(10);
    expect(net.raft(1).propose(new Uint8Array(100))).toMatchObject({ ok: false, reason: 'uncommittedLimit' });
  });
});
