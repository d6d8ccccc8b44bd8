// A seeded, deterministic in-memory Raft cluster: real RawNode cores, in-memory durable storage,
// and a network that can drop, delay, reorder, duplicate and partition. The contract is
// documented in README.md beside this file; other checks drive it, so keep it stable.
import { MemoryStorage } from '../log-storage.js';
import { seededRandom } from '../prng.js';
import type { Random } from '../prng.js';
import { RawNode } from '../raft.js';
import type { RaftLogger, RaftStatus } from '../raft.js';
import type { Entry, Message, NodeId, Snapshot } from '../types.js';
import { SafetyChecker } from './invariants.js';

export interface SimOptions {
  readonly ids: readonly NodeId[];
  readonly seed?: number | string;
  readonly electionTick?: number;
  readonly heartbeatTick?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly maxSizePerMsg?: number;
  readonly maxInflightMsgs?: number;
  /** Take a snapshot and compact the log every this many applied entries (0 = never). */
  readonly snapshotEvery?: number;
  /** Entries kept in the log behind a snapshot, for slow followers. */
  readonly snapshotKeep?: number;
  /** Bound on delivery rounds in stabilize(). */
  readonly maxStabilizeRounds?: number;
  /** Check safety invariants after every step (throws SafetyViolation). On by default. */
  readonly checkInvariants?: boolean;
  readonly logger?: RaftLogger;
}

export type SimRole = 'leader' | 'follower' | 'candidate' | 'precandidate' | 'learner';

export interface SimStatus {
  readonly role: SimRole;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly voters: NodeId[];
  readonly learners: NodeId[];
  readonly alive: boolean;
}

export interface ProposeOutcome {
  readonly ok: boolean;
  readonly leaderHint: NodeId | null;
  readonly index?: number;
  readonly term?: number;
}

/** Chaos knobs for one delivery round (`deliver`). */
export interface DeliveryOptions {
  /** Deliver in a random order instead of send order. */
  readonly reorder?: boolean;
  /** Probability that a message is held back for a later round. */
  readonly delayP?: number;
  /** Probability that a delivered message is also delivered a second time later. */
  readonly duplicateP?: number;
  /** Deliver at most this many messages. */
  readonly max?: number;
}

export class SimError extends Error {
  readonly code = 'ERR_SIM';
}

interface SimNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raft: RawNode | null;
  /** Data of the normal, non-empty entries applied, in order (the state machine). */
  applied: Uint8Array[];
  readonly readStates: Map<string, number>;
  initialMember: boolean;
  removed: boolean;
  restarts: number;
  lastStatus: RaftStatus | null;
}

interface InFlight {
  readonly msg: Message;
}

const EMPTY = new Uint8Array(0);

export class SimCluster {
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly initialIds: NodeId[];
  private network: InFlight[] = [];
  private readonly rand: Random;
  private readonly isolated = new Set<NodeId>();
  private readonly cut = new Set<string>();
  private readonly drops = new Map<string, number>();
  private readCounter = 0;
  private readonly opts: Required<Omit<SimOptions, 'logger' | 'seed' | 'ids'>> & { logger?: RaftLogger; seed: number | string };
  readonly safety: SafetyChecker;

  constructor(options: SimOptions) {
    if (options.ids.length === 0) throw new SimError('SimCluster needs at least one id');
    if (new Set(options.ids).size !== options.ids.length) throw new SimError('SimCluster ids must be unique');
    this.opts = {
      seed: options.seed ?? 1,
      electionTick: options.electionTick ?? 10,
      heartbeatTick: options.heartbeatTick ?? 1,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      maxSizePerMsg: options.maxSizePerMsg ?? 64 * 1024,
      maxInflightMsgs: options.maxInflightMsgs ?? 64,
      snapshotEvery: options.snapshotEvery ?? 0,
      snapshotKeep: options.snapshotKeep ?? 5,
      maxStabilizeRounds: options.maxStabilizeRounds ?? 10_000,
      checkInvariants: options.checkInvariants ?? true,
      ...(options.logger ? { logger: options.logger } : {}),
    };
    this.rand = seededRandom(`sim-${String(this.opts.seed)}`);
    this.safety = new SafetyChecker();
    this.safety.attachStorage((id) => this.nodes.get(id)?.storage);
    this.initialIds = [...options.ids];
    for (const id of options.ids) {
      const node: SimNode = {
        id,
        storage: new MemoryStorage(),
        raft: null,
        applied: [],
        readStates: new Map(),
        initialMember: true,
        removed: false,
        restarts: 0,
        lastStatus: null,
      };
      this.nodes.set(id, node);
      node.raft = this.makeRaft(node);
    }
    this.processAllReady();
  }

  // ------------------------------------------------------------------ contract

  /** Ticks every live node, or only `id`; then one round of message delivery. */
  tick(id?: NodeId): void {
    if (id !== undefined) {
      this.live(id)?.tick();
    } else {
      for (const n of this.nodes.values()) if (n.raft && !n.removed) n.raft.tick();
    }
    this.processAllReady();
    this.deliver();
    this.processAllReady();
  }

  /** Delivers messages until none is in flight and no node has work (bounded). Returns rounds used. */
  stabilize(): number {
    for (let round = 0; round < this.opts.maxStabilizeRounds; round++) {
      this.processAllReady();
      if (this.network.length === 0) return round;
      this.deliver();
    }
    return this.opts.maxStabilizeRounds;
  }

  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.cut.add(linkKey(a, b));
        this.cut.add(linkKey(b, a));
      }
    }
  }

  heal(): void {
    this.isolated.clear();
    this.cut.clear();
    this.drops.clear();
  }

  dropRate(from: NodeId, to: NodeId, p: number): void {
    if (!(p >= 0 && p <= 1)) throw new SimError(`drop rate must be in [0, 1], got ${p}`);
    this.drops.set(linkKey(from, to), p);
  }

  propose(id: NodeId, data: Uint8Array): ProposeOutcome {
    const r = this.live(id);
    if (!r) return { ok: false, leaderHint: null };
    const res = r.propose(data);
    if (res.ok) return { ok: true, leaderHint: id, index: res.index, term: res.term };
    return { ok: false, leaderHint: res.leaderHint };
  }

  /** The live leader with the highest term, or undefined. */
  leader(): NodeId | undefined {
    let best: NodeId | undefined;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (!n.raft || n.removed) continue;
      const s = n.raft.status();
      if (s.role === 'leader' && s.term > bestTerm) {
        best = n.id;
        bestTerm = s.term;
      }
    }
    return best;
  }

  status(id: NodeId): SimStatus {
    const n = this.node(id);
    if (n.raft) {
      const s = n.raft.status();
      n.lastStatus = s;
      return toSimStatus(s, !n.removed);
    }
    const hs = n.storage.hard();
    const last = n.lastStatus;
    const cs = n.storage.snapshot().metadata.confState;
    return {
      role: last?.isLearner ? 'learner' : 'follower',
      term: hs.term,
      vote: hs.vote,
      leader: null,
      commit: hs.commit,
      applied: last?.applied ?? n.storage.snapshot().metadata.index,
      lastIndex: n.storage.lastIndex(),
      voters: last ? [...last.voters] : [...cs.voters],
      learners: last ? [...last.learners] : [...cs.learners],
      alive: false,
    };
  }

  applied(id: NodeId): Uint8Array[] {
    return this.node(id).applied.slice();
  }

  crash(id: NodeId): void {
    const n = this.node(id);
    if (!n.raft) return;
    n.lastStatus = n.raft.status();
    n.raft = null;
    n.readStates.clear();
    this.dropInFlight(id);
  }

  restart(id: NodeId): void {
    const n = this.node(id);
    if (n.raft) return;
    n.restarts++;
    n.applied = decodeApplied(n.storage.snapshot().data);
    n.raft = this.makeRaft(n);
    this.processReady(n);
  }

  /**
   * Adds a node as a learner, lets it catch up, then promotes it to voter. Returns whether it
   * ended up a voter (false when there is no leader or the change could not commit).
   */
  addNode(id: NodeId): boolean {
    if (this.nodes.has(id) && !this.nodes.get(id)!.removed) throw new SimError(`node ${String(id)} already exists`);
    this.stabilize();
    const leaderId = this.leader();
    if (leaderId === undefined) return false;
    const node: SimNode = {
      id,
      storage: new MemoryStorage(),
      raft: null,
      applied: [],
      readStates: new Map(),
      initialMember: false,
      removed: false,
      restarts: 0,
      lastStatus: null,
    };
    this.nodes.set(id, node);
    node.raft = this.makeRaft(node);
    if (!this.proposeConf(leaderId, { type: 'addLearner', nodeId: id })) return false;
    // Catch up as a learner, then promote: a new voter that lags would weaken the quorum.
    for (let i = 0; i < 20; i++) {
      this.stabilize();
      const l = this.leader();
      if (l === undefined) return false;
      const pr = this.live(l)!.progress(id);
      const st = this.live(l)!.status();
      if (pr && pr.match >= st.commit) {
        if (!this.proposeConf(l, { type: 'addNode', nodeId: id })) return false;
        this.stabilize();
        return this.live(l)?.status().voters.includes(id) ?? false;
      }
      this.tick();
    }
    return false;
  }

  /** Removes a node through a configuration change; the removed node is then shut down. */
  removeNode(id: NodeId): boolean {
    this.node(id);
    this.stabilize();
    const leaderId = this.leader();
    if (leaderId === undefined) return false;
    if (!this.proposeConf(leaderId, { type: 'removeNode', nodeId: id })) return false;
    this.stabilize();
    const l = this.live(leaderId);
    const s = l?.status();
    const applied = s !== undefined && !s.voters.includes(id) && !s.learners.includes(id);
    if (applied) {
      const n = this.node(id);
      if (n.raft) n.lastStatus = n.raft.status();
      n.removed = true;
      this.dropInFlight(id);
    }
    return applied;
  }

  transferLeader(from: NodeId, to: NodeId): void {
    this.live(from)?.transferLeader(to);
    this.stabilize();
  }

  /** A linearizable read index from `id`, confirmed by a quorum round; throws when it cannot be. */
  readIndex(id: NodeId): number {
    const r = this.live(id);
    if (!r) throw new SimError(`node ${String(id)} is down`);
    const ctx = `read-${String(id)}-${++this.readCounter}`;
    const res = r.readIndex(ctx);
    if (!res.ok) throw new SimError(`node ${String(id)} knows no leader to confirm a read`);
    this.stabilize();
    const n = this.node(id);
    const index = n.readStates.get(ctx);
    n.readStates.delete(ctx);
    if (index === undefined) throw new SimError(`read index on node ${String(id)} was not confirmed by a quorum`);
    return index;
  }

  // ------------------------------------------------------------------ finer control for tests

  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  isAlive(id: NodeId): boolean {
    const n = this.nodes.get(id);
    return !!n && !!n.raft && !n.removed;
  }

  /** Direct access to a live node's core (for scenario tests that need more than the contract). */
  raft(id: NodeId): RawNode | undefined {
    return this.live(id) ?? undefined;
  }

  campaign(id: NodeId): void {
    this.live(id)?.campaign();
    this.processAllReady();
  }

  /** Number of messages in flight. */
  inFlight(): number {
    return this.network.length;
  }

  /** The persisted log of a node (after its snapshot). */
  log(id: NodeId): Entry[] {
    const s = this.node(id).storage;
    if (s.lastIndex() < s.firstIndex()) return [];
    return s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  }

  /** Takes a snapshot on `id` at its applied index and compacts its log, keeping `keep` entries. */
  compact(id: NodeId, keep = this.opts.snapshotKeep): void {
    const n = this.node(id);
    if (!n.raft) return;
    this.snapshotNode(n, keep);
  }

  /** One delivery round with optional chaos. Returns how many messages were delivered. */
  deliver(opts: DeliveryOptions = {}): number {
    const batch = this.network;
    this.network = [];
    const order = opts.reorder ? shuffle(batch, this.rand) : batch;
    let delivered = 0;
    const max = opts.max ?? Number.POSITIVE_INFINITY;
    for (const f of order) {
      if (delivered >= max || (opts.delayP && this.rand() < opts.delayP)) {
        this.network.push(f);
        continue;
      }
      delivered++;
      this.deliverOne(f.msg);
      if (opts.duplicateP && this.rand() < opts.duplicateP) this.network.push(f);
    }
    return delivered;
  }

  /** Hands every live node's pending Ready to "disk", "network" and "state machine". */
  processAllReady(): void {
    for (let pass = 0; pass < 8; pass++) {
      let any = false;
      for (const n of this.nodes.values()) {
        if (n.raft && !n.removed && n.raft.hasReady()) {
          this.processReady(n);
          any = true;
        }
      }
      if (!any) break;
    }
    if (this.opts.checkInvariants) this.safety.checkLeaders(this.liveStatuses());
  }

  // ------------------------------------------------------------------ internals

  private liveStatuses(): RaftStatus[] {
    const out: RaftStatus[] = [];
    for (const n of this.nodes.values()) if (n.raft && !n.removed) out.push(n.raft.status());
    return out;
  }

  private proposeConf(leaderId: NodeId, cc: { type: 'addNode' | 'addLearner' | 'removeNode'; nodeId: NodeId }): boolean {
    for (let i = 0; i < 20; i++) {
      const l = this.live(leaderId);
      if (!l) return false;
      const res = l.proposeConfChange(cc);
      if (res.ok) return true;
      if (res.reason !== 'confChangePending') return false;
      this.stabilize();
    }
    return false;
  }

  private makeRaft(n: SimNode): RawNode {
    return new RawNode({
      id: n.id,
      storage: n.storage,
      ...(n.initialMember ? { peers: this.initialIds } : {}),
      electionTick: this.opts.electionTick,
      heartbeatTick: this.opts.heartbeatTick,
      preVote: this.opts.preVote,
      checkQuorum: this.opts.checkQuorum,
      maxSizePerMsg: this.opts.maxSizePerMsg,
      maxInflightMsgs: this.opts.maxInflightMsgs,
      random: seededRandom(`${String(this.opts.seed)}/${String(n.id)}/${n.restarts}`),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
  }

  private processReady(n: SimNode): void {
    const r = n.raft!;
    const rd = r.ready();
    // 1. persist: snapshot, entries, hard state.
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      n.applied = decodeApplied(rd.snapshot.data);
    }
    if (rd.entries.length > 0) {
      n.storage.append(rd.entries);
      if (this.opts.checkInvariants) this.safety.checkAppended(n.storage, rd.entries);
    }
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    // 2. send.
    for (const m of rd.earlyMessages) this.network.push({ msg: m });
    for (const m of rd.messages) this.network.push({ msg: m });
    // 3. apply.
    for (const e of rd.committedEntries) {
      if (this.opts.checkInvariants) this.safety.checkApplied(n.id, e);
      if (e.type === 'normal' && e.data.byteLength > 0) n.applied.push(e.data);
    }
    for (const rs of rd.readStates) n.readStates.set(rs.context, rs.index);
    r.advance();
    if (this.opts.snapshotEvery > 0) {
      const applied = r.status().applied;
      if (applied - n.storage.snapshot().metadata.index >= this.opts.snapshotEvery) this.snapshotNode(n, this.opts.snapshotKeep);
    }
  }

  private snapshotNode(n: SimNode, keep: number): void {
    const r = n.raft!;
    const applied = r.status().applied;
    if (applied <= n.storage.snapshot().metadata.index) return;
    n.storage.createSnapshot(applied, r.confState(), encodeApplied(n.applied));
    const upTo = applied - keep;
    if (upTo > n.storage.firstIndex()) n.storage.compact(upTo);
  }

  private deliverOne(m: Message): void {
    const to = this.nodes.get(m.to);
    const blocked = this.blocked(m.from, m.to);
    const target = to && to.raft && !to.removed && !blocked ? to.raft : null;
    if (target) target.step(m);
    if (m.type === 'snap') {
      // The transport reports the outcome of a snapshot send back to the leader.
      this.live(m.from)?.reportSnapshot(m.to, target !== null);
    }
  }

  /** Drops messages to and from `id`; a lost snapshot is reported to its sender, as a transport would. */
  private dropInFlight(id: NodeId): void {
    const keep: InFlight[] = [];
    for (const f of this.network) {
      if (f.msg.from !== id && f.msg.to !== id) keep.push(f);
      else if (f.msg.type === 'snap' && f.msg.from !== id) this.live(f.msg.from)?.reportSnapshot(f.msg.to, false);
    }
    this.network = keep;
  }

  private blocked(from: NodeId, to: NodeId): boolean {
    if (this.isolated.has(from) || this.isolated.has(to)) return true;
    const key = linkKey(from, to);
    if (this.cut.has(key)) return true;
    const p = this.drops.get(key);
    return p !== undefined && p > 0 && this.rand() < p;
  }

  private node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new SimError(`unknown node ${String(id)}`);
    return n;
  }

  private live(id: NodeId): RawNode | null {
    const n = this.node(id);
    return n.raft && !n.removed ? n.raft : null;
  }
}

function toSimStatus(s: RaftStatus, alive: boolean): SimStatus {
  return {
    role: s.role === 'follower' && s.isLearner ? 'learner' : s.role,
    term: s.term,
    vote: s.vote,
    leader: s.leader,
    commit: s.commit,
    applied: s.applied,
    lastIndex: s.lastIndex,
    voters: s.voters,
    learners: s.learners,
    alive,
  };
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${typeof from}:${String(from)}>${typeof to}:${String(to)}`;
}

function shuffle<T>(items: T[], rand: Random): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The sim's state machine snapshot: the applied data, length-prefixed. */
export function encodeApplied(list: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const d of list) size += 4 + d.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const d of list) {
    view.setUint32(off, d.byteLength);
    out.set(d, off + 4);
    off += 4 + d.byteLength;
  }
  return out;
}

export function decodeApplied(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  while (off < data.byteLength) {
    const len = view.getUint32(off);
    out.push(data.slice(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

export type { Snapshot };
export { EMPTY as EMPTY_DATA };
