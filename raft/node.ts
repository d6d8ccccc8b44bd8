// The Raft driver: wires the pure core (RawNode) to durable storage, a transport, a tick
// timer and the application's state machine.
//
// One processing loop runs at a time (`run`). Events (peer messages, proposals, ticks,
// transport reports) are stepped into the core immediately and only *schedule* the loop with
// setImmediate, so a burst of events within one event-loop turn becomes one Ready. Each Ready
// is handled strictly in this order, as types.ts's Ready contract requires:
//
//   ready() ─► apply committed entries already durable here  (see below)
//           ─► log.save(snapshot, entries, hardState)  (one LevelDB batch, one fsync)
//           ─► transport.send(messages)                  (only after the save is durable)
//           ─► apply snapshot, then the rest of the committed entries (resolves proposals and reads)
//           ─► advance()
//
// While a save is in flight the loop is suspended but events keep being stepped, so the next
// Ready carries everything that arrived meanwhile: group commit, one fsync per batch.
//
// Two things keep the write path short under load:
// - Committed entries that were already on this node's disk before the Ready (every committed
//   entry of a leader's Ready: it counts itself toward a commit only once its entries are durable)
//   are applied before the Ready's own save, not after it. Otherwise a batch's answers would wait
//   for the next batch's fsync. Committed means durable on a quorum, so nothing acknowledged here
//   can be lost; applying touches only the local state machine and sends nothing to peers.
// - A Ready whose only durable change is the commit index (term and vote unchanged, no entries,
//   no snapshot) writes nothing: the new hard state is kept and written with the next save (or
//   at close). A lost commit index is re-learned from the leader (or, for a lone voter, by
//   committing its next term's no-op), and the entries it covers were synced by earlier Readys.
import { pino, type Logger } from 'pino';
import type { MemoryStorage } from './log-storage.js';
import { RawNode, type ProgressStatus, type ProposeRefusal, type ProposeResult, type RaftConfig } from './raft.js';
import { DurableLog } from './storage/index.js';
import type { Transport, TransportReport } from './transport/transport.js';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, Ready, Snapshot, SoftState } from './types.js';

/** The durable log as the driver needs it (raft/storage's DurableLog has this shape). */
export interface RaftLog {
  /** The in-memory view of what is durable; the core reads it as its LogStorage. */
  readonly memory: MemoryStorage;
  /** Persists snapshot, entries and hard state atomically; fsyncs when `mustSync`. */
  save(rd: { hardState: HardState | null; entries: readonly Entry[]; snapshot: Snapshot | null; mustSync: boolean }): Promise<void>;
  close(): Promise<void>;
  /** Records the application's snapshot at `index` (≤ applied) durably; needed for automatic snapshots. */
  createSnapshot?(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot>;
  /** Drops entries before `index` (≤ the snapshot's index). */
  compact?(index: number): Promise<void>;
  /** Re-seals every record under a new data key; later writes use it. */
  rotateKey?(dek: Uint8Array): Promise<void>;
}

/** Tuning of the core, passed through to RawNode. */
export type RaftTuning = Pick<
  RaftConfig,
  'preVote' | 'checkQuorum' | 'maxSizePerMsg' | 'maxInflightMsgs' | 'maxInflightBytes' | 'maxUncommittedBytes'
>;

export interface RaftNodeOptions {
  readonly id: NodeId;
  /** Bootstrap voters, used only when the log is empty. */
  readonly peers?: readonly NodeId[];
  /** Owned by the node: closed by close(). */
  readonly log: RaftLog;
  /** Owned by the node: closed by close(). */
  readonly transport: Transport;
  /** Applies one committed normal entry (never the leader's empty no-op, never a conf change). */
  readonly apply: (entry: Entry) => void;
  /** Replaces the state machine with a snapshot's data (on start and when a leader sends one). */
  readonly restore?: (snapshot: Snapshot) => void;
  /** Serializes the state machine as of the last applied entry (for automatic snapshots). */
  readonly snapshotData?: () => Uint8Array;
  /**
   * Take a snapshot (snapshotData → log.createSnapshot) every this many applied entries, then
   * compact the log keeping `snapshotKeepEntries` entries behind it. Default 0: never.
   */
  readonly snapshotIntervalEntries?: number;
  /** Entries kept before the snapshot index for followers that are only a little behind (default 500). */
  readonly snapshotKeepEntries?: number;
  /** Told when the leader or this node's role changes. */
  readonly onSoftState?: (s: SoftState) => void;
  /** Told when the node stops on an unrecoverable error (a failed save or apply); it is closed by then. */
  readonly onFatal?: (err: Error) => void;
  /** Length of one tick (default 100 ms). */
  readonly tickMs?: number;
  /** Ticks without a leader before campaigning (default 10). */
  readonly electionTick?: number;
  /** Ticks between heartbeats (default 1). */
  readonly heartbeatTick?: number;
  /** A proposal not applied after this long is rejected with ERR_RAFT_TIMEOUT (outcome unknown; default 10 s). */
  readonly proposeTimeoutMs?: number;
  /** A read not served after this long is rejected with ERR_RAFT_TIMEOUT (default 5 s). */
  readonly readTimeoutMs?: number;
  readonly tuning?: RaftTuning;
  /** Seeded PRNG in [0,1) for the election jitter (default Math.random). */
  readonly random?: () => number;
  readonly logger?: Logger;
}

/** The core refused a proposal or read: not leader, transfer in progress, or a limit reached. */
export class ProposalRejectedError extends Error {
  readonly code: 'ERR_RAFT_NOT_LEADER' | 'ERR_RAFT_PROPOSAL_REJECTED';
  constructor(
    readonly reason: ProposeRefusal | 'emptyData',
    readonly leaderHint: NodeId | null,
  ) {
    super(
      reason === 'notLeader'
        ? `raft: this node is not the leader${leaderHint === null ? ' (no leader known yet; retry)' : `; send to node ${String(leaderHint)}`}`
        : `raft: proposal rejected (${reason})`,
    );
    this.code = reason === 'notLeader' ? 'ERR_RAFT_NOT_LEADER' : 'ERR_RAFT_PROPOSAL_REJECTED';
  }
}

/** The proposal's log slot ended up holding another entry (a new leader overwrote it): it will never apply. */
export class ProposalDroppedError extends Error {
  readonly code = 'ERR_RAFT_PROPOSAL_DROPPED';
  constructor(readonly index: number, readonly term: number, readonly reason: 'overwritten' | 'snapshot') {
    super(
      reason === 'overwritten'
        ? `raft: proposal at index ${index} (term ${term}) was overwritten by a newer leader; retry it`
        : `raft: proposal at index ${index} (term ${term}) was covered by a snapshot before it could be matched; its outcome is unknown`,
    );
  }
}

export class RaftTimeoutError extends Error {
  readonly code = 'ERR_RAFT_TIMEOUT';
  constructor(what: string, readonly timeoutMs: number) {
    super(`raft: ${what} not completed within ${timeoutMs} ms (its outcome is unknown; a leader change or a lost quorum is likely)`);
  }
}

export class RaftNodeClosedError extends Error {
  readonly code = 'ERR_RAFT_NODE_CLOSED';
  constructor(override readonly cause?: Error) {
    super(cause === undefined ? 'raft: node is closed' : `raft: node stopped after a fatal error: ${cause.message}`);
  }
}

interface PendingProposal {
  readonly term: number;
  readonly deadlineMs: number;
  readonly resolve: (r: { index: number; term: number }) => void;
  readonly reject: (e: Error) => void;
}

interface PendingRead {
  readonly deadlineMs: number;
  /** Set once the read state arrived: serve when applied ≥ index. */
  index: number;
  readonly resolve: (r: { index: number }) => void;
  readonly reject: (e: Error) => void;
}

export type RaftNodeStatus = ReturnType<RawNode['status']>;

/** Counters since start, for benchmarks and monitoring (how well group commit batches). */
export interface RaftNodeMetrics {
  readonly readys: number;
  /** Saves with fsync, and how long they took in total. */
  readonly syncedSaves: number;
  readonly syncedSaveMs: number;
  readonly entriesSaved: number;
  readonly messagesSent: number;
  readonly entriesApplied: number;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly raw: RawNode;
  private readonly log: RaftLog;
  private readonly transport: Transport;
  private readonly logger: Logger;
  private readonly opts: RaftNodeOptions;
  private readonly proposeTimeoutMs: number;
  private readonly readTimeoutMs: number;
  /** Keyed by log index; insertion order is proposal order, so deadlines ascend. */
  private readonly proposals = new Map<number, PendingProposal>();
  /** Keyed by read context; insertion order is request order. */
  private readonly reads = new Map<string, PendingRead>();
  private readSeq = 0;
  private readonly counters = { readys: 0, syncedSaves: 0, syncedSaveMs: 0, entriesSaved: 0, messagesSent: 0, entriesApplied: 0 };
  private appliedIndex = 0;
  private scheduled = false;
  /** True while `run` is processing Readys (it may be suspended in a save). */
  private running = false;
  /** The latest `run`, for close() to wait on. */
  private loop: Promise<void> = Promise.resolve();
  /**
   * A hard state whose only change was the commit index, not written yet: it goes to disk with
   * the next save (a newer hard state replaces it) or at close.
   */
  private unsavedHardState: HardState | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private fatal: Error | undefined;
  private readonly ticker: NodeJS.Timeout;
  /** Snapshot policy: starts from the options, changed at runtime by setSnapshotPolicy. */
  private snapshotIntervalEntries: number;
  private snapshotKeepEntries: number;
  private readonly runBound = (): void => {
    this.scheduled = false;
    if (!this.running && !this.closed) this.loop = this.run();
  };

  constructor(opts: RaftNodeOptions) {
    this.opts = opts;
    this.id = opts.id;
    this.log = opts.log;
    this.transport = opts.transport;
    this.logger = opts.logger ?? pino({ name: 'raft-node', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' }).child({ id: opts.id });
    this.proposeTimeoutMs = opts.proposeTimeoutMs ?? 10_000;
    this.readTimeoutMs = opts.readTimeoutMs ?? 5_000;
    this.snapshotIntervalEntries = opts.snapshotIntervalEntries ?? 0;
    this.snapshotKeepEntries = opts.snapshotKeepEntries ?? 500;
    const snap = this.log.memory.snapshot();
    if (snap.metadata.index > 0) {
      opts.restore?.(snap);
      this.appliedIndex = snap.metadata.index;
    }
    const cfg: RaftConfig = {
      ...opts.tuning,
      id: opts.id,
      storage: this.log.memory,
      electionTick: opts.electionTick ?? 10,
      heartbeatTick: opts.heartbeatTick ?? 1,
      ...(opts.peers !== undefined ? { peers: [...opts.peers] } : {}),
      ...(opts.random !== undefined ? { random: opts.random } : {}),
      logger: this.logger.child({ component: 'raft-core' }),
    };
    this.raw = new RawNode(cfg);
    this.transport.onMessage((m) => this.onPeerMessage(m));
    this.transport.onReport((r) => this.onTransportReport(r));
    this.ticker = setInterval(() => this.onTick(), opts.tickMs ?? 100);
    this.schedule();
  }

  /** Opens (or creates) the durable log in `dir`, sealed under `dek`, and starts a node on it. */
  static async open(opts: Omit<RaftNodeOptions, 'log'> & { readonly dir: string; readonly dek: Uint8Array }): Promise<RaftNode> {
    const log = await DurableLog.open(opts.dir, { dek: opts.dek, ...(opts.logger !== undefined ? { logger: opts.logger } : {}) });
    try {
      return new RaftNode({ ...opts, log });
    } catch (err) {
      await log.close();
      throw err;
    }
  }

  /** Index of the last entry handed to the state machine. */
  get applied(): number {
    return this.appliedIndex;
  }

  status(): RaftNodeStatus {
    return this.raw.status();
  }

  metrics(): RaftNodeMetrics {
    return { ...this.counters };
  }

  /**
   * Proposes `data` (non-empty); resolves with its (index, term) once it is committed and
   * applied on this node. Rejects with ProposalRejectedError (carrying the leader hint) when
   * this node cannot accept it, ProposalDroppedError when a newer leader overwrote it,
   * RaftTimeoutError after `proposeTimeoutMs`, RaftNodeClosedError on close.
   */
  propose(data: Uint8Array): Promise<{ index: number; term: number }> {
    if (this.closed) return Promise.reject(new RaftNodeClosedError(this.fatal));
    if (data.byteLength === 0) return Promise.reject(new ProposalRejectedError('emptyData', null));
    const r = this.raw.propose(data);
    if (!r.ok) return Promise.reject(new ProposalRejectedError(r.reason, r.leaderHint));
    const old = this.proposals.get(r.index);
    if (old !== undefined) {
      this.proposals.delete(r.index);
      old.reject(new ProposalDroppedError(r.index, old.term, 'overwritten'));
    }
    this.schedule();
    return new Promise((resolve, reject) => {
      this.proposals.set(r.index, { term: r.term, deadlineMs: performance.now() + this.proposeTimeoutMs, resolve, reject });
    });
  }

  /**
   * A linearizable read barrier: resolves with the read index once this node has applied at
   * least the leader's commit index as of a quorum-confirmed moment after the call.
   */
  readIndex(): Promise<{ index: number }> {
    if (this.closed) return Promise.reject(new RaftNodeClosedError(this.fatal));
    const context = `${String(this.id)}/${++this.readSeq}`;
    const r = this.raw.readIndex(context);
    if (!r.ok) return Promise.reject(new ProposalRejectedError('notLeader', r.leaderHint));
    this.schedule();
    return new Promise((resolve, reject) => {
      this.reads.set(context, { deadlineMs: performance.now() + this.readTimeoutMs, index: -1, resolve, reject });
    });
  }

  /**
   * Proposes a membership change (one at a time: refused with 'confChangePending' while another
   * is unapplied). Returns the core's answer at once; the change takes effect when its entry is
   * applied, which `status()` then shows.
   */
  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.closed) return { ok: false, reason: 'removed', leaderHint: null };
    const r = this.raw.proposeConfChange(cc);
    if (r.ok) this.schedule();
    return r;
  }

  /**
   * Re-seals the whole log under a new data encryption key (the key manager's DEK rotation).
   * The log runs its writes in call order, so saves queued before finish under the old key and
   * every save after uses the new one.
   */
  async rotateKey(dek: Uint8Array): Promise<void> {
    if (this.closed) throw new RaftNodeClosedError(this.fatal);
    if (this.log.rotateKey === undefined) throw new Error('raft node: this log cannot rotate its key');
    await this.log.rotateKey(dek);
  }

  /**
   * Changes when snapshots are taken (every `intervalEntries` applied entries; 0: never) and how
   * many entries are kept behind one, from the next applied entry on (the cluster's Spec.Raft).
   */
  setSnapshotPolicy(policy: { readonly intervalEntries: number; readonly keepEntries: number }): void {
    this.snapshotIntervalEntries = Math.max(0, Math.floor(policy.intervalEntries));
    this.snapshotKeepEntries = Math.max(0, Math.floor(policy.keepEntries));
  }

  /** The leader's view of a member's replication; undefined on followers and for non-members. */
  progress(id: NodeId): ProgressStatus | undefined {
    return this.raw.progress(id);
  }

  campaign(): void {
    if (this.closed) return;
    this.raw.campaign();
    this.schedule();
  }

  transferLeader(to: NodeId): void {
    if (this.closed) return;
    this.raw.transferLeader(to);
    this.schedule();
  }

  /** Stops the timer, lets an in-flight save finish, rejects what is pending, closes transport and log. */
  close(): Promise<void> {
    if (this.closing === null) this.closing = this.shutdown(undefined);
    return this.closing;
  }

  private async shutdown(cause: Error | undefined): Promise<void> {
    this.closed = true;
    this.fatal = cause;
    clearInterval(this.ticker);
    await this.loop.catch(() => {});
    const hs = this.unsavedHardState;
    this.unsavedHardState = null;
    if (hs !== null && cause === undefined) {
      // Not required for safety (see the top of this file), but a clean restart then resumes
      // with every applied entry committed instead of waiting for a leader to say so again.
      await this.log.save({ hardState: hs, entries: [], snapshot: null, mustSync: false }).catch((err: unknown) => {
        this.logger.warn({ err }, 'could not write the last commit index at close');
      });
    }
    const err = new RaftNodeClosedError(cause);
    for (const p of this.proposals.values()) p.reject(err);
    this.proposals.clear();
    for (const r of this.reads.values()) r.reject(err);
    this.reads.clear();
    const results = await Promise.allSettled([this.transport.close(), this.log.close()]);
    for (const res of results) if (res.status === 'rejected') this.logger.warn({ err: res.reason }, 'error while closing');
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.closed) return;
    this.scheduled = true;
    setImmediate(this.runBound);
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed && this.raw.hasReady()) {
        const rd = this.raw.ready();
        await this.handleReady(rd);
        if (this.closed) return;
        this.raw.advance();
        await this.maybeSnapshot();
      }
    } catch (err) {
      this.die(err as Error);
    } finally {
      this.running = false;
    }
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState !== null) {
      this.logger.info({ leader: rd.softState.leader, role: rd.softState.role }, 'raft state changed');
      this.opts.onSoftState?.(rd.softState);
    }
    if (rd.entries.length > 0) this.rejectOverwritten(rd.entries);
    // A leader's appends overlap its own fsync (the core allows it: see Ready.earlyMessages).
    if (rd.earlyMessages.length > 0) {
      this.counters.messagesSent += rd.earlyMessages.length;
      this.transport.send(rd.earlyMessages);
    }
    let committed = rd.committedEntries;
    if (rd.snapshot !== null || rd.entries.length > 0 || (rd.hardState !== null && rd.mustSync)) {
      // Committed entries at or below what was durable before this Ready need nothing from its
      // save: apply them now, while the save is in flight. (With a snapshot in the Ready the
      // snapshot must be applied first, so everything waits.)
      if (rd.snapshot === null && committed.length > 0) {
        const durableLast = this.log.memory.lastIndex();
        let n = 0;
        while (n < committed.length && committed[n]!.index <= durableLast) n++;
        if (n > 0) {
          this.counters.entriesApplied += n;
          for (let i = 0; i < n; i++) this.applyEntry(committed[i]!);
          committed = n === committed.length ? [] : committed.slice(n);
        }
      }
      const hardState = rd.hardState ?? this.unsavedHardState;
      this.unsavedHardState = null;
      const startMs = performance.now();
      await this.log.save({ hardState, entries: rd.entries, snapshot: rd.snapshot, mustSync: rd.mustSync });
      if (rd.mustSync) {
        this.counters.syncedSaves++;
        this.counters.syncedSaveMs += performance.now() - startMs;
      }
      this.counters.entriesSaved += rd.entries.length;
      // close() waits for this loop; a save that finished after close began still counts as
      // durable, but nothing more may happen on a closed node.
      if (this.closed) return;
    } else if (rd.hardState !== null) {
      // Only the commit index moved: kept for the next save (see the top of this file).
      this.unsavedHardState = rd.hardState;
    }
    this.counters.readys++;
    this.counters.messagesSent += rd.messages.length;
    this.counters.entriesApplied += committed.length;
    this.transport.send(rd.messages);
    if (rd.snapshot !== null) this.applySnapshot(rd.snapshot);
    for (const e of committed) this.applyEntry(e);
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.context);
      if (r !== undefined) r.index = rs.index;
    }
    if (this.reads.size > 0) this.serveReads();
  }

  /**
   * Runs after advance(): the state machine is at appliedIndex and the core's configuration
   * includes every conf change up to it, so (data, confState) describe the same index.
   */
  private async maybeSnapshot(): Promise<void> {
    const interval = this.snapshotIntervalEntries;
    const data = this.opts.snapshotData;
    if (interval <= 0 || data === undefined || this.log.createSnapshot === undefined) return;
    const index = this.appliedIndex;
    if (index - this.log.memory.snapshot().metadata.index < interval) return;
    const started = performance.now();
    const bytes = data();
    const encoded = performance.now();
    const snap = await this.log.createSnapshot(index, this.raw.confState(), bytes);
    const written = performance.now();
    const compactTo = snap.metadata.index - this.snapshotKeepEntries;
    if (this.log.compact !== undefined && compactTo > this.log.memory.firstIndex()) await this.log.compact(compactTo);
    const done = performance.now();
    this.logger.info(
      {
        index,
        sizeBytes: snap.data.byteLength,
        firstIndex: this.log.memory.firstIndex(),
        ms: Math.round(done - started),
        dataMs: Math.round(encoded - started),
        writeMs: Math.round(written - encoded),
        compactMs: Math.round(done - written),
      },
      'snapshot taken',
    );
  }

  /** Pending proposals whose slot now holds an entry of another term can never apply. */
  private rejectOverwritten(entries: readonly Entry[]): void {
    if (this.proposals.size === 0) return;
    for (const e of entries) {
      const p = this.proposals.get(e.index);
      if (p !== undefined && p.term !== e.term) {
        this.proposals.delete(e.index);
        p.reject(new ProposalDroppedError(e.index, p.term, 'overwritten'));
      }
    }
  }

  private applySnapshot(snap: Snapshot): void {
    this.opts.restore?.(snap);
    this.appliedIndex = Math.max(this.appliedIndex, snap.metadata.index);
    for (const [index, p] of this.proposals) {
      if (index <= snap.metadata.index) {
        this.proposals.delete(index);
        p.reject(new ProposalDroppedError(index, p.term, 'snapshot'));
      }
    }
  }

  private applyEntry(e: Entry): void {
    if (e.type === 'normal' && e.data.byteLength > 0) this.opts.apply(e);
    this.appliedIndex = e.index;
    if (this.proposals.size === 0) return;
    const p = this.proposals.get(e.index);
    if (p === undefined) return;
    this.proposals.delete(e.index);
    if (p.term === e.term) p.resolve({ index: e.index, term: e.term });
    else p.reject(new ProposalDroppedError(e.index, p.term, 'overwritten'));
  }

  private serveReads(): void {
    for (const [ctx, r] of this.reads) {
      if (r.index >= 0 && r.index <= this.appliedIndex) {
        this.reads.delete(ctx);
        r.resolve({ index: r.index });
      }
    }
  }

  private onPeerMessage(m: Message): void {
    if (this.closed) return;
    try {
      this.raw.step(m);
    } catch (err) {
      this.logger.warn({ err, from: m.from, type: m.type }, 'core refused a peer message');
      return;
    }
    this.schedule();
  }

  private onTransportReport(r: TransportReport): void {
    if (this.closed) return;
    if (r.type === 'unreachable') this.raw.reportUnreachable(r.peer);
    else this.raw.reportSnapshot(r.peer, r.ok);
    this.schedule();
  }

  private onTick(): void {
    if (this.closed) return;
    this.raw.tick();
    this.schedule();
    this.expire(performance.now());
  }

  private expire(nowMs: number): void {
    for (const [index, p] of this.proposals) {
      if (p.deadlineMs > nowMs) break;
      this.proposals.delete(index);
      p.reject(new RaftTimeoutError(`proposal at index ${index}`, this.proposeTimeoutMs));
    }
    for (const [ctx, r] of this.reads) {
      if (r.deadlineMs > nowMs) break;
      this.reads.delete(ctx);
      r.reject(new RaftTimeoutError('read index', this.readTimeoutMs));
    }
  }

  private die(err: Error): void {
    if (this.closing !== null) return;
    this.logger.error({ err }, 'raft node stopped on a fatal error');
    this.closing = this.shutdown(err);
    this.opts.onFatal?.(err);
  }
}
