// The Raft consensus core as a pure state machine, in the style of etcd's raft RawNode.
// No timers, sockets, disk, clocks or global randomness: input is tick() / step() / propose(),
// output is a Ready batch the driver persists, sends and applies before calling advance().
//
// Extensions beyond the paper: pre-vote and check-quorum (thesis §9.6, §6.2), pipelined
// replication with a bounded in-flight window, fast log back-off with a (index, term) hint,
// learners, one-at-a-time membership changes, leader transfer (thesis §3.10), ReadIndex (§6.4).
import { decodeConfChange, encodeConfChange } from './confchange.js';
import { entryBytes } from './log-storage.js';
import type { LogStorage } from './log-storage.js';
import { Progress } from './progress.js';
import { seededRandom, randomInt } from './prng.js';
import type { Random } from './prng.js';
import { committedIndex, quorumSize, voteResult } from './quorum.js';
import { RaftLog, assert } from './raft-log.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  MsgApp,
  MsgAppResp,
  MsgHeartbeat,
  MsgHeartbeatResp,
  MsgReadIndex,
  MsgSnap,
  MsgVote,
  MsgVoteResp,
  NodeId,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SoftState,
} from './types.js';

/** Optional structured logging hook; the core never writes anywhere itself. */
export interface RaftLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

const SILENT: RaftLogger = { debug() {}, info() {}, warn() {} };

export interface RaftConfig {
  readonly id: NodeId;
  /** The persisted log; a restart reads hard state, snapshot and entries from here. */
  readonly storage: LogStorage;
  /** Voters of a brand-new group (storage empty). A node joining an existing group passes none. */
  readonly peers?: readonly NodeId[];
  /** Ticks without a leader before campaigning (randomized in [electionTick, 2·electionTick)). */
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /** Byte cap per append message (at least one entry is always sent). */
  readonly maxSizePerMsg?: number;
  readonly maxInflightMsgs?: number;
  readonly maxInflightBytes?: number;
  /** The leader refuses proposals while its uncommitted tail is over this (0 = no limit). */
  readonly maxUncommittedBytes?: number;
  readonly maxCommittedBytesPerReady?: number;
  readonly random?: Random;
  readonly logger?: RaftLogger;
}

export type ProposeRefusal = 'notLeader' | 'transferring' | 'uncommittedLimit' | 'confChangePending' | 'removed' | 'invalid';

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: ProposeRefusal; readonly leaderHint: NodeId | null };

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  readonly voters: NodeId[];
  readonly learners: NodeId[];
  readonly isLearner: boolean;
  readonly leadTransferee: NodeId | null;
}

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly isLearner: boolean;
  readonly inflight: number;
  readonly recentActive: boolean;
}

interface PendingRead {
  readonly index: number;
  readonly from: NodeId;
  readonly context: string;
  readonly acks: Set<NodeId>;
}

/** What was handed out in the last Ready, for advance() to acknowledge. */
interface Handed {
  readonly lastEntry: { index: number; term: number } | null;
  readonly snapshotIndex: number | null;
  readonly committed: readonly Entry[];
  readonly hardState: HardState | null;
}

const MAX_FORWARDED_PENDING_READS = 4096;

export class RawNode {
  readonly id: NodeId;
  private term = 0;
  private vote: NodeId | null = null;
  private lead: NodeId | null = null;
  private role: Role = 'follower';
  private readonly log: RaftLog;

  private readonly prs = new Map<NodeId, Progress>();
  private voters = new Set<NodeId>();
  private learners = new Set<NodeId>();
  private votes = new Map<NodeId, boolean>();

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout: number;
  private readonly electionTimeout: number;
  private readonly heartbeatTimeout: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxSizePerMsg: number;
  private readonly maxInflightMsgs: number;
  private readonly maxInflightBytes: number;
  private readonly maxUncommittedBytes: number;
  private readonly random: Random;
  private readonly logger: RaftLogger;

  private leadTransferee: NodeId | null = null;
  private pendingConfIndex = 0;
  private uncommittedBytes = 0;
  /** New entries or a commit advance are waiting to be broadcast at the next Ready. */
  private bcastPending = false;
  private bcastCommit = false;

  private readonly pendingReads = new Map<string, PendingRead>();
  private readonly pendingReadOrder: string[] = [];
  /** ReadIndex requests that arrived before this leader committed an entry of its term. */
  private readsAwaitingCommit: { from: NodeId; context: string }[] = [];

  private prevSoft: SoftState;
  private prevHard: HardState;
  private handed: Handed | null = null;

  constructor(cfg: RaftConfig) {
    assert(cfg.electionTick > cfg.heartbeatTick && cfg.heartbeatTick > 0, () => 'electionTick must be greater than heartbeatTick > 0');
    this.id = cfg.id;
    this.electionTimeout = cfg.electionTick;
    this.heartbeatTimeout = cfg.heartbeatTick;
    this.preVote = cfg.preVote ?? true;
    this.checkQuorum = cfg.checkQuorum ?? true;
    this.maxSizePerMsg = cfg.maxSizePerMsg ?? 1024 * 1024;
    this.maxInflightMsgs = cfg.maxInflightMsgs ?? 256;
    this.maxInflightBytes = cfg.maxInflightBytes ?? 64 * 1024 * 1024;
    this.maxUncommittedBytes = cfg.maxUncommittedBytes ?? 0;
    this.random = cfg.random ?? seededRandom(`raft-${String(cfg.id)}`);
    this.logger = cfg.logger ?? SILENT;
    this.log = new RaftLog(cfg.storage, cfg.maxCommittedBytesPerReady ?? 64 * 1024 * 1024);

    const { hardState, confState } = cfg.storage.initialState();
    const fresh = cfg.storage.lastIndex() === 0 && hardState.term === 0 && confState.voters.length === 0;
    this.applyConfState(confState);
    if (fresh && cfg.peers && cfg.peers.length > 0) {
      this.bootstrap(cfg.peers);
    } else {
      this.term = hardState.term;
      this.vote = hardState.vote;
      if (hardState.commit > 0) {
        assert(hardState.commit <= this.log.lastIndex(), () => `hard state commit ${hardState.commit} is beyond the last index ${this.log.lastIndex()}`);
        this.log.commitTo(hardState.commit);
      }
    }
    this.randomizedElectionTimeout = this.electionTimeout;
    this.resetRandomizedElectionTimeout();
    this.prevSoft = { leader: null, role: 'follower' };
    this.prevHard = fresh ? { term: 0, vote: null, commit: 0 } : hardState;
    this.role = 'follower';
  }

  // ---------------------------------------------------------------- public API

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  /** Starts an election now (as if the election timeout had passed). */
  campaign(): void {
    this.hup(false);
  }

  propose(data: Uint8Array): ProposeResult {
    return this.proposeEntry('normal', data);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.role === 'leader') {
      if (this.pendingConfIndex > this.log.applied) return this.refuse('confChangePending');
      if (cc.type === 'removeNode' && this.voters.has(cc.nodeId) && this.voters.size === 1) return this.refuse('invalid');
    }
    return this.proposeEntry('conf', encodeConfChange(cc));
  }

  /**
   * Asks for a linearizable read index. The answer (context echoed) arrives in a later
   * Ready's readStates once leadership is confirmed by a quorum in the current term.
   */
  readIndex(context: string): { ok: boolean; leaderHint: NodeId | null } {
    if (this.role === 'leader') {
      this.handleReadIndex(this.id, context);
      return { ok: true, leaderHint: this.id };
    }
    if (this.lead === null) return { ok: false, leaderHint: null };
    this.send({ type: 'readIndex', from: this.id, to: this.lead, term: this.term, context });
    return { ok: true, leaderHint: this.lead };
  }

  transferLeader(to: NodeId): void {
    if (this.role === 'leader') {
      this.handleTransferLeader(to);
    } else if (this.lead !== null) {
      this.send({ type: 'transferLeader', from: this.id, to: this.lead, term: this.term, target: to });
    }
  }

  reportUnreachable(id: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.prs.get(id);
    if (pr && pr.state === 'replicate') pr.becomeProbe();
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.role !== 'leader') return;
    const pr = this.prs.get(id);
    if (!pr || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Success: wait for the follower's append response; failure: wait a heartbeat before retrying.
    pr.probeSent = true;
  }

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      voters: [...this.voters],
      learners: [...this.learners],
      isLearner: this.learners.has(this.id),
      leadTransferee: this.leadTransferee,
    };
  }

  progress(id: NodeId): ProgressStatus | undefined {
    const pr = this.prs.get(id);
    if (!pr || this.role !== 'leader') return undefined;
    return { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner, inflight: pr.inflights.count, recentActive: pr.recentActive };
  }

  hasReady(): boolean {
    if (this.handed !== null) return false;
    if (this.bcastPending || this.msgs.length > 0 || this.readStates.length > 0) return true;
    if (this.log.unstable.nextEntries().length > 0) return true;
    if (this.log.unstable.snapshot && !this.log.unstable.snapshotInProgress) return true;
    if (this.log.hasNextCommittedEnts()) return true;
    const soft = this.softState();
    if (soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role) return true;
    return !sameHardState(this.hardState(), this.prevHard);
  }

  ready(): Ready {
    assert(this.handed === null, () => 'ready() called again before advance()');
    this.flushBroadcast();
    const soft = this.softState();
    const hard = this.hardState();
    const entries = this.log.unstable.nextEntries();
    const snap = this.log.unstable.snapshot && !this.log.unstable.snapshotInProgress ? this.log.unstable.snapshot : null;
    const committed = this.log.nextCommittedEnts();
    const hardChanged = !sameHardState(hard, this.prevHard);
    const softChanged = soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role;
    const termOrVoteChanged = hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote;
    let messages = this.msgs;
    let earlyMessages: Message[] = [];
    if (this.role === 'leader' && !termOrVoteChanged) {
      // A leader's appends and heartbeats promise nothing about its own disk: they may overlap the write.
      earlyMessages = messages.filter((m) => m.type === 'app' || m.type === 'heartbeat');
      if (earlyMessages.length > 0) messages = messages.filter((m) => m.type !== 'app' && m.type !== 'heartbeat');
    }
    const rd: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot: snap,
      committedEntries: committed,
      messages,
      earlyMessages,
      readStates: this.readStates,
      mustSync: entries.length > 0 || snap !== null || termOrVoteChanged,
    };
    this.msgs = [];
    this.readStates = [];
    this.log.unstable.acceptInProgress();
    if (committed.length > 0) this.log.applying = committed[committed.length - 1]!.index;
    if (softChanged) this.prevSoft = soft;
    const last = entries.length > 0 ? entries[entries.length - 1]! : null;
    this.handed = {
      lastEntry: last ? { index: last.index, term: last.term } : null,
      snapshotIndex: snap ? snap.metadata.index : null,
      committed,
      hardState: hardChanged ? hard : null,
    };
    return rd;
  }

  /** Acknowledges the last Ready: its entries and snapshot are durable, its committed entries applied. */
  advance(): void {
    const h = this.handed;
    assert(h !== null, () => 'advance() called without a Ready');
    this.handed = null;
    if (h.hardState) this.prevHard = h.hardState;
    if (h.snapshotIndex !== null) {
      this.log.unstable.stableSnapTo(h.snapshotIndex);
      this.log.appliedTo(h.snapshotIndex);
    }
    if (h.lastEntry) this.log.unstable.stableTo(h.lastEntry.index, h.lastEntry.term);
    if (h.committed.length > 0) {
      const lastIdx = h.committed[h.committed.length - 1]!.index;
      this.log.appliedTo(lastIdx);
      for (const e of h.committed) {
        if (this.role === 'leader') this.uncommittedBytes = Math.max(0, this.uncommittedBytes - e.data.byteLength);
        if (e.type === 'conf') this.applyConfChange(decodeConfChange(e.data));
      }
    }
    if (this.role === 'leader') {
      // The leader counts itself toward a commit quorum only for what it has persisted.
      const self = this.prs.get(this.id);
      if (self && self.maybeUpdate(this.log.stableLastIndex())) this.maybeCommitAndBroadcast();
    }
  }

  // ---------------------------------------------------------------- step

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const inLease = this.checkQuorum && this.lead !== null && this.electionElapsed < this.electionTimeout;
        if (!m.transfer && inLease) {
          // Leader stickiness: we heard from a live leader recently, so this candidate is disruptive.
          this.logger.debug({ id: this.id, from: m.from, term: m.term }, 'ignoring vote request: leader lease active');
          return;
        }
      }
      if (m.type === 'preVote') {
        // Pre-votes never change our term.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // A granted pre-vote carries the future term; we bump it ourselves on winning.
      } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'heartbeat' || m.type === 'app')) {
        // A stale leader: tell it our term so it steps down (frees a stuck higher-term candidate).
        this.send({ type: 'appResp', from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'precandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private handleVoteRequest(m: MsgVote): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      (m.type === 'preVote' && m.term > this.term);
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // A granted pre-vote answers at the candidate's future term so the candidate counts it.
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        break;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        break;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        break;
      case 'timeoutNow':
        this.logger.info({ id: this.id, from: m.from, term: this.term }, 'received timeout-now: campaigning for leadership transfer');
        this.hup(true);
        break;
      case 'readIndexResp':
        if (!m.reject) this.readStates.push({ index: m.index, context: m.context });
        break;
      case 'transferLeader':
        if (this.lead !== null) this.send({ type: 'transferLeader', from: this.id, to: this.lead, term: this.term, target: m.target });
        break;
      default:
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        break;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        break;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        break;
      case 'voteResp':
      case 'preVoteResp': {
        const expected = this.role === 'precandidate' ? 'preVoteResp' : 'voteResp';
        if (m.type !== expected) return;
        this.votes.set(m.from, !m.reject);
        this.tallyElection();
        break;
      }
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'appResp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'readIndex':
        this.handleReadIndex(m.from, m.context);
        return;
      case 'transferLeader':
        this.handleTransferLeader(m.target);
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- follower side

  private handleAppend(m: MsgApp): void {
    if (m.index < this.log.committed) {
      this.sendAppResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== null) {
      this.sendAppResp(m.from, lastNew, false, 0, 0);
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.logger.debug({ id: this.id, from: m.from, index: m.index, logTerm: m.logTerm, hint }, 'rejecting append: log mismatch');
    this.sendAppResp(m.from, m.index, true, hint.index, hint.term);
  }

  private handleHeartbeat(m: MsgHeartbeat): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'heartbeatResp', from: this.id, to: m.from, term: this.term, context: m.context });
  }

  private handleSnapshot(m: MsgSnap): void {
    const s = m.snapshot.metadata;
    if (this.restore(m.snapshot)) {
      this.logger.info({ id: this.id, index: s.index, term: s.term }, 'restored snapshot');
      this.sendAppResp(m.from, this.log.lastIndex(), false, 0, 0);
    } else {
      this.sendAppResp(m.from, this.log.committed, false, 0, 0);
    }
  }

  private restore(s: Snapshot): boolean {
    const md = s.metadata;
    if (md.index <= this.log.committed) return false;
    if (this.role !== 'follower') {
      this.becomeFollower(this.term + 1, null);
      return false;
    }
    const cs = md.confState;
    const inSnapshot = cs.voters.includes(this.id) || cs.learners.includes(this.id);
    const inConfig = this.voters.has(this.id) || this.learners.has(this.id);
    if (!inSnapshot && inConfig) {
      // A member must not roll back to a configuration without itself. A node that does not yet
      // know it joined (its addition is later in the log than the snapshot) may restore it.
      this.logger.warn({ id: this.id, index: md.index }, 'ignoring snapshot whose configuration does not include this node');
      return false;
    }
    if (this.log.matchTerm(md.index, md.term)) {
      // We already hold the log up to the snapshot: just move the commit forward.
      this.log.commitTo(md.index);
      return false;
    }
    this.log.restore(s);
    this.prs.clear();
    this.applyConfState(cs);
    return true;
  }

  private sendAppResp(to: NodeId, index: number, reject: boolean, rejectHint: number, logTerm: number): void {
    this.send({ type: 'appResp', from: this.id, to, term: this.term, index, reject, rejectHint, logTerm });
  }

  // ---------------------------------------------------------------- leader side

  private handleAppendResponse(m: MsgAppResp): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (wasPaused && !pr.isPaused()) this.sendAppendsTo(m.from);
      return;
    }
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (!this.maybeCommitAndBroadcast()) this.sendAppendsTo(m.from);
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.logger.info({ id: this.id, to: m.from }, 'transfer target caught up: sending timeout-now');
      this.send({ type: 'timeoutNow', from: this.id, to: m.from, term: this.term });
    }
  }

  private handleHeartbeatResponse(m: MsgHeartbeatResp): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex() || pr.state === 'probe') this.sendAppend(m.from, true);
    if (m.context !== null) this.ackRead(m.from, m.context);
  }

  /** Commits what a quorum holds; on progress, arranges to tell followers. */
  private maybeCommitAndBroadcast(): boolean {
    const mci = committedIndex(this.voters, (id) => this.prs.get(id)?.match ?? 0);
    if (!this.log.maybeCommit(mci, this.term)) return false;
    this.bcastPending = true;
    this.bcastCommit = true;
    this.releaseReadsAwaitingCommit();
    return true;
  }

  private sendAppendsTo(to: NodeId): void {
    // Send as much as the window allows, size-capped per message.
    for (let i = 0; i < this.maxInflightMsgs + 1; i++) {
      if (!this.sendAppend(to, false)) return;
    }
  }

  /**
   * Sends an append (or a snapshot when the follower's next entry is compacted) to `to`.
   * Returns whether a message was sent. With sendIfEmpty false, sends only when there are entries.
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const ents = prevTerm === undefined ? null : this.log.entriesFrom(pr.next, this.maxSizePerMsg);
    if (prevTerm === undefined || ents === null) return this.sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of ents) bytes += entryBytes(e);
    const lastIndex = ents.length > 0 ? ents[ents.length - 1]!.index : prevIndex;
    this.send({ type: 'app', from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.log.committed });
    pr.sentEntries(ents.length, lastIndex, bytes);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.logger.debug({ id: this.id, to }, 'not sending snapshot: follower not recently active');
      return false;
    }
    const snap = this.log.snapshot();
    assert(snap.metadata.index > 0, () => `need a snapshot to send to ${String(to)} but none exists`);
    this.logger.info({ id: this.id, to, index: snap.metadata.index }, 'sending snapshot to lagging follower');
    pr.becomeSnapshot(snap.metadata.index);
    this.send({ type: 'snap', from: this.id, to, term: this.term, snapshot: snap });
    return true;
  }

  private flushBroadcast(): void {
    if (!this.bcastPending) return;
    const withCommit = this.bcastCommit;
    this.bcastPending = false;
    this.bcastCommit = false;
    if (this.role !== 'leader') return;
    for (const id of this.prs.keys()) {
      if (id === this.id) continue;
      if (withCommit) this.sendAppend(id, true);
      this.sendAppendsTo(id);
    }
  }

  private bcastHeartbeat(context: string | null): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      const commit = Math.min(pr.match, this.log.committed);
      this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit, context });
    }
  }

  private proposeEntry(type: Entry['type'], data: Uint8Array): ProposeResult {
    if (this.role !== 'leader') return this.refuse('notLeader');
    if (!this.prs.has(this.id)) return this.refuse('removed');
    if (this.leadTransferee !== null) return this.refuse('transferring');
    if (this.maxUncommittedBytes > 0 && this.uncommittedBytes > 0 && this.uncommittedBytes + data.byteLength > this.maxUncommittedBytes) {
      return this.refuse('uncommittedLimit');
    }
    const index = this.log.lastIndex() + 1;
    this.log.append([{ term: this.term, index, type, data }]);
    this.uncommittedBytes += data.byteLength;
    if (type === 'conf') this.pendingConfIndex = index;
    this.bcastPending = true;
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      // Nothing to wait for but our own disk: commit follows at advance().
    }
    return { ok: true, index, term: this.term };
  }

  private refuse(reason: ProposeRefusal): ProposeResult {
    return { ok: false, reason, leaderHint: this.lead };
  }

  // ---------------------------------------------------------------- reads

  private handleReadIndex(from: NodeId, context: string): void {
    if (!this.committedEntryInCurrentTerm()) {
      // §6.4: a new leader does not know the commit index until its own no-op commits.
      if (this.readsAwaitingCommit.length < MAX_FORWARDED_PENDING_READS) this.readsAwaitingCommit.push({ from, context });
      return;
    }
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.answerRead(from, this.log.committed, context);
      return;
    }
    if (this.pendingReads.has(context)) return;
    if (this.pendingReads.size >= MAX_FORWARDED_PENDING_READS) {
      if (from !== this.id) this.send({ type: 'readIndexResp', from: this.id, to: from, term: this.term, context, index: 0, reject: true });
      return;
    }
    const acks = new Set<NodeId>();
    if (this.voters.has(this.id)) acks.add(this.id);
    this.pendingReads.set(context, { index: this.log.committed, from, context, acks });
    this.pendingReadOrder.push(context);
    this.bcastHeartbeat(context);
  }

  private ackRead(from: NodeId, context: string): void {
    const req = this.pendingReads.get(context);
    if (!req) return;
    if (this.voters.has(from)) req.acks.add(from);
    if (req.acks.size < quorumSize(this.voters.size)) return;
    // A quorum confirmed leadership after this request: it and every earlier one are safe.
    while (this.pendingReadOrder.length > 0) {
      const ctx = this.pendingReadOrder.shift()!;
      const r = this.pendingReads.get(ctx);
      this.pendingReads.delete(ctx);
      if (r) this.answerRead(r.from, r.index, r.context);
      if (ctx === context) break;
    }
  }

  private answerRead(from: NodeId, index: number, context: string): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: 'readIndexResp', from: this.id, to: from, term: this.term, context, index, reject: false });
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private releaseReadsAwaitingCommit(): void {
    if (this.readsAwaitingCommit.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const r of waiting) this.handleReadIndex(r.from, r.context);
  }

  // ---------------------------------------------------------------- leader transfer

  private handleTransferLeader(target: NodeId): void {
    const pr = this.prs.get(target);
    if (!pr || pr.isLearner) {
      this.logger.warn({ id: this.id, target }, 'ignoring leadership transfer to a node that is not a voter');
      return;
    }
    if (this.leadTransferee !== null) {
      if (this.leadTransferee === target) return;
      this.abortLeaderTransfer();
    }
    if (target === this.id) return;
    this.electionElapsed = 0;
    this.leadTransferee = target;
    this.logger.info({ id: this.id, target, term: this.term }, 'starting leadership transfer');
    if (pr.match === this.log.lastIndex()) {
      this.send({ type: 'timeoutNow', from: this.id, to: target, term: this.term });
    } else {
      this.sendAppend(target, true);
    }
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = null;
  }

  // ---------------------------------------------------------------- elections

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        this.logger.warn({ id: this.id, term: this.term }, 'stepping down: no quorum heard from within an election timeout');
        this.becomeFollower(this.term, null);
        return;
      }
      if (this.leadTransferee !== null) {
        this.logger.warn({ id: this.id, target: this.leadTransferee }, 'leadership transfer timed out');
        this.abortLeaderTransfer();
      }
    }
    if (this.role !== 'leader') return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      const last = this.pendingReadOrder[this.pendingReadOrder.length - 1];
      this.bcastHeartbeat(last ?? null);
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      const pr = this.prs.get(id);
      if (!pr) continue;
      if (id === this.id || pr.recentActive) active++;
    }
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
    return active >= quorumSize(this.voters.size);
  }

  private promotable(): boolean {
    return this.voters.has(this.id);
  }

  private hup(transfer: boolean): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) {
      this.logger.debug({ id: this.id }, 'not campaigning: not a voter');
      return;
    }
    if (this.hasUnappliedConfChange()) {
      this.logger.warn({ id: this.id }, 'not campaigning: committed configuration changes are not yet applied');
      return;
    }
    if (this.preVote && !transfer) this.runElection(true, false);
    else this.runElection(false, transfer);
  }

  private hasUnappliedConfChange(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const ents = this.log.slice(Math.max(this.log.applied + 1, this.log.firstIndex()), this.log.committed + 1, Number.MAX_SAFE_INTEGER) ?? [];
    return ents.some((e) => e.type === 'conf');
  }

  private runElection(pre: boolean, transfer: boolean): void {
    let term: number;
    if (pre) {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    this.votes.set(this.id, true);
    if (this.tallyElection()) return;
    const type = pre ? 'preVote' : 'vote';
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send({ type, from: this.id, to: id, term, index, logTerm, transfer });
    }
  }

  /** Acts on the votes so far; returns whether the election is decided. */
  private tallyElection(): boolean {
    const result = voteResult(this.voters, this.votes);
    if (result === 'won') {
      if (this.role === 'precandidate') this.runElection(false, false);
      else this.becomeLeader();
      return true;
    }
    if (result === 'lost') {
      this.becomeFollower(this.term, null);
      return true;
    }
    return false;
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', () => 'leader cannot become pre-candidate');
    // Does not touch term or vote: a pre-election changes nothing durable.
    this.votes = new Map();
    this.lead = null;
    this.role = 'precandidate';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', () => 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', () => `only a candidate becomes leader (was ${this.role})`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const self = this.prs.get(this.id);
    if (self) {
      self.becomeReplicate();
      self.match = this.log.stableLastIndex();
    }
    // Any configuration change in the uncommitted tail counts as pending.
    this.pendingConfIndex = this.log.lastIndex();
    this.uncommittedBytes = 0;
    this.log.append([{ term: this.term, index: this.log.lastIndex() + 1, type: 'normal', data: new Uint8Array(0) }]);
    this.bcastPending = true;
    this.logger.info({ id: this.id, term: this.term }, 'became leader');
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.votes = new Map();
    this.bcastPending = false;
    this.bcastCommit = false;
    this.pendingReads.clear();
    this.pendingReadOrder.length = 0;
    this.readsAwaitingCommit = [];
    const next = this.log.lastIndex() + 1;
    for (const pr of this.prs.values()) {
      pr.becomeProbe();
      pr.match = 0;
      pr.next = next;
      pr.recentActive = true;
    }
    const self = this.prs.get(this.id);
    if (self) self.match = this.log.stableLastIndex();
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = randomInt(this.random, this.electionTimeout, 2 * this.electionTimeout);
  }

  // ---------------------------------------------------------------- membership

  private bootstrap(peers: readonly NodeId[]): void {
    const ents: Entry[] = peers.map((id, i) => ({
      term: 1,
      index: i + 1,
      type: 'conf' as const,
      data: encodeConfChange({ type: 'addNode', nodeId: id }),
    }));
    this.log.append(ents);
    this.term = 1;
    this.log.commitTo(ents.length);
    for (const id of peers) this.applyConfChange({ type: 'addNode', nodeId: id });
  }

  private applyConfState(cs: ConfState): void {
    this.voters = new Set();
    this.learners = new Set();
    for (const id of cs.voters) this.addProgress(id, false);
    for (const id of cs.learners) this.addProgress(id, true);
  }

  private addProgress(id: NodeId, learner: boolean): void {
    if (learner) {
      this.learners.add(id);
      this.voters.delete(id);
    } else {
      this.voters.add(id);
      this.learners.delete(id);
    }
    const existing = this.prs.get(id);
    if (existing) {
      existing.isLearner = learner;
      return;
    }
    const pr = new Progress(id, this.log.lastIndex() + 1, learner, this.maxInflightMsgs, this.maxInflightBytes);
    if (id === this.id) pr.match = this.log.stableLastIndex();
    this.prs.set(id, pr);
  }

  /** Applies a committed membership change (idempotent). */
  private applyConfChange(cc: ConfChange): void {
    switch (cc.type) {
      case 'addNode':
        this.addProgress(cc.nodeId, false);
        break;
      case 'addLearner':
        this.addProgress(cc.nodeId, true);
        break;
      case 'removeNode':
        this.voters.delete(cc.nodeId);
        this.learners.delete(cc.nodeId);
        this.prs.delete(cc.nodeId);
        break;
    }
    this.logger.info({ id: this.id, change: cc.type, node: cc.nodeId, voters: [...this.voters] }, 'applied configuration change');
    if (this.role !== 'leader') return;
    if (!this.voters.has(this.id)) {
      // Removed or demoted: a leader that is not a voter steps down once its removal is applied.
      this.logger.info({ id: this.id, term: this.term }, 'stepping down: no longer a voter');
      this.becomeFollower(this.term, null);
      return;
    }
    if (this.leadTransferee !== null && !this.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
    if (!this.maybeCommitAndBroadcast()) this.bcastPending = true;
  }

  confState(): ConfState {
    return { voters: [...this.voters], learners: [...this.learners] };
  }

  // ---------------------------------------------------------------- helpers

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export type { MsgVoteResp, MsgReadIndex };
