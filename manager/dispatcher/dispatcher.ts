// The dispatcher: the manager side of every worker's session (gRPC service `Dispatcher`, callable
// with a worker or a manager certificate; the node is always the certificate's CN, never a field
// of the request).
//
// Only the leader dispatches. A leadership check (every `leadershipCheckMs`) starts the leader's
// machinery — the batch writer, one store watch routed to every node's assignment stream, and a
// heartbeat deadline per node — and tears it down when leadership is lost, ending every stream so
// that agents reconnect. A follower answers Session with the leader's address and the manager list,
// then FAILED_PRECONDITION; its other calls fail with FAILED_PRECONDITION too.
//
//   Session        register/refresh the Node (ready, description, address) through the batch
//                  writer, then SessionMessage{session_id, managers, node_json, heartbeat period};
//                  later messages carry manager-list and node changes. A new session of a node
//                  ends the old one's streams.
//   Heartbeat      re-arms the node's deadline: period × gracePeriodMultiplier (+ jitter); a node
//                  that misses it is written down ("heartbeat failure") and its streams end.
//   Assignments    COMPLETE (tasks ASSIGNED or later on this node + the secrets/configs they
//                  reference), then INCREMENTAL deltas from the store watch; large sets in chunks.
//   UpdateTaskStatus  every update must name a task of the caller's node (else PERMISSION_DENIED,
//                  nothing applied); updates are queued in the batch writer and the call resolves
//                  when its batch committed, listing refused updates (backwards moves…).
import { randomBytes } from 'node:crypto';

import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';

import {
  AssignmentsMessage_Type,
  type AssignmentsMessage,
  type AssignmentsRequest,
  type DispatcherServer,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type NodeStreamRequest,
  type NodeStreamResponse,
  type SessionMessage,
  type SessionRequest,
  type UpdateTaskStatusRequest,
  type UpdateTaskStatusResponse,
  type WeightedPeer,
} from '../../proto/gen/shoal/dispatcher.js';
import { peerIdentity, type PeerIdentity } from '../../proto/grpc/authz.js';
import { ResyncRequiredError } from '../store/errors.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { Node, TaskStatus } from '../store/types.js';
import type { ChangeEvent, StoreWatch } from '../store/watch.js';
import { AssignmentSet, type AssignedItem, type AssignmentDelta } from './assignment-set.js';
import { DISPATCHER_SERVICE, EncodedAssignments, encodeAssignmentsMessage, encodedChange, objectJson, type EncodedChange } from './assignment-wire.js';
import { BatchWriter, nodeRoleOfCertificate } from './batch-writer.js';
import { DispatcherError, notLeader, sessionInvalid } from './errors.js';
import { NetworkPeersCache, touchedNetworks, type NetworkPeers } from './network-peers.js';
import { encodeJson, nodeDescriptionFromWire, taskStatusFromProto } from './wire.js';

/** A manager as workers reach it. */
export interface ManagerPeer {
  readonly nodeId: string;
  /** host:port of its cluster port. */
  readonly addr: string;
}

/** What the dispatcher needs to know about Raft leadership (the manager runtime implements it). */
export interface Leadership {
  isLeader(): boolean;
  /** The leader as workers reach it, when known. */
  leader(): ManagerPeer | null;
}

export interface DispatcherConfig {
  /** Used while the Cluster object sets no Spec.Dispatcher.HeartbeatPeriod (Docker's default: 5 s). */
  readonly heartbeatPeriodMs: number;
  /** Each HeartbeatResponse's period is the period ± up to this much, so that nodes spread out. */
  readonly heartbeatJitterMs: number;
  /** A node is down after (period + jitter) × this without a heartbeat (swarmkit: 3). */
  readonly gracePeriodMultiplier: number;
  /** Most node/task changes in one store transaction. */
  readonly maxBatchItems: number;
  /** Longest a change waits for its batch (swarmkit: 100 ms). */
  readonly maxBatchIntervalMs: number;
  /**
   * Most batches committing at once when full batches are waiting (load): their Raft round trips
   * overlap. Default 1: in bench:cluster 4 made statuses land sooner but cost more CPU per task
   * everywhere (workers answered sooner send more, smaller reports) and delivery got slower.
   */
  readonly maxInflightCommits: number;
  /** Most changes queued before UpdateTaskStatus answers RESOURCE_EXHAUSTED. */
  readonly maxPendingItems: number;
  /** How often leadership and the manager list are checked. */
  readonly leadershipCheckMs: number;
  /** Messages a stream may have buffered unsent before the dispatcher ends it (the node resyncs). */
  readonly maxStreamBufferedMessages: number;
  /** Largest assignments message, by the JSON it carries (gRPC's default limit is 4 MiB). */
  readonly maxAssignmentMessageBytes: number;
  /**
   * The send window: a node hears incremental changes at most once per this many ms. The first
   * change after a quiet window goes at once; what comes within the window after a send is held
   * and goes in one message when the window ends (swarmkit batches a node's changes for up to
   * 100 ms too). 0 (default): every routing pass sends at once. Off by default: at 1,000 workers
   * a 100 ms window cut assignment messages per task 0.50 → 0.40 but not the leader's CPU per task
   * (0.437 ms both), and it delayed a single task's start by ~90 ms on a node that had heard a
   * change in the previous 100 ms (bench:vs-swarm task-start p50 255 → 345 ms).
   */
  readonly assignmentWindowMs: number;
  /**
   * How long the first change after a quiet window waits for more of the same burst (0: sent at
   * once). swarmkit waits 100 ms after every change; with the first change sent at once, a
   * scheduler pass and the one right after it still make two messages per node.
   */
  readonly assignmentFirstDelayMs: number;
  /** Most store events a node's window holds; past it they go at once. */
  readonly maxHeldEvents: number;
}

export const DEFAULT_DISPATCHER_CONFIG: DispatcherConfig = {
  heartbeatPeriodMs: 5000,
  heartbeatJitterMs: 500,
  gracePeriodMultiplier: 3,
  maxBatchItems: 500,
  maxBatchIntervalMs: 100,
  maxInflightCommits: 1,
  maxPendingItems: 50_000,
  leadershipCheckMs: 200,
  maxStreamBufferedMessages: 1000,
  maxAssignmentMessageBytes: 1024 * 1024,
  assignmentWindowMs: 0,
  assignmentFirstDelayMs: 0,
  maxHeldEvents: 10_000,
};

export interface DispatcherDeps {
  /** The manager's store (reads, watch; writes go through `update`, on the leader). */
  readonly store: MemoryStore;
  readonly leadership: Leadership;
  /** The managers workers may use, for their failover list. */
  readonly managers: () => readonly ManagerPeer[];
  /** The cluster's root CA certificate(s), sent to nodes in the session. */
  readonly rootCaPem?: () => string;
  readonly config?: Partial<DispatcherConfig>;
  readonly logger?: Logger;
}

type SessionCall = grpc.ServerWritableStream<SessionRequest, SessionMessage>;
type AssignmentsCall = grpc.ServerWritableStream<AssignmentsRequest, AssignmentsMessage>;
type AnyStream = SessionCall | AssignmentsCall;

interface AssignmentStream {
  readonly call: AssignmentsCall;
  readonly set: AssignmentSet;
  /** Events at or before this version are already in the set (it was listed at this version). */
  baseVersion: number;
  sequence: number;
  appliesTo: string;
  /** Events held for the end of the send window (already past baseVersion), oldest first. */
  held: ChangeEvent[];
  holdTimer: NodeJS.Timeout | null;
  /** When the last INCREMENTAL message went (performance.now()); -Infinity before any. */
  lastSentAt: number;
}

interface NodeSession {
  readonly nodeId: string;
  readonly sessionId: string;
  expiry: NodeJS.Timeout | null;
  /** The grace period `expiry` was armed with. */
  expiryMs: number;
  sessionCall: SessionCall | null;
  assignments: AssignmentStream | null;
  /** The node's Spec as last sent, to send changes only. */
  lastSpecJson: string;
}

// Services and networks only change network views (network-peers.ts).
const WATCHED_KINDS = ['task', 'secret', 'config', 'node', 'service', 'network'] as const;
const NO_EVENTS: readonly ChangeEvent[] = [];
const NS_PER_MS = 1_000_000;

function peerHost(peer: string): string {
  // grpc-js gives "1.2.3.4:port", "[::1]:port" or "ipv4:…" forms; Node.Status.Addr is the IP alone.
  const p = peer.replace(/^ipv[46]:/, '');
  if (p.startsWith('[')) return p.slice(1, p.indexOf(']'));
  const i = p.lastIndexOf(':');
  return i > 0 ? p.slice(0, i) : p;
}

export class Dispatcher {
  readonly config: DispatcherConfig;
  private readonly log: Logger;
  private readonly store: MemoryStore;
  private readonly ended = new WeakSet<AnyStream>();
  private readonly sessions = new Map<string, NodeSession>();
  /** Encoded network views, by view object (views live for one routing pass). */
  private readonly viewJson = new WeakMap<NetworkPeers, string>();
  /** Nodes a new leader has not heard from yet: written down when these fire. */
  private readonly unknownTimers = new Map<string, NodeJS.Timeout>();
  private writer: BatchWriter | null = null;
  private watch: StoreWatch | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private managersJson = '';
  private stopped = false;
  /** Heartbeats answered since this dispatcher was made (benchmarks: heartbeat load). */
  heartbeatsHandled = 0;

  constructor(private readonly deps: DispatcherDeps) {
    this.config = { ...DEFAULT_DISPATCHER_CONFIG, ...deps.config };
    this.log = deps.logger ?? pino({ level: 'silent' });
    this.store = deps.store;
  }

  /** True while this dispatcher serves sessions (it is the leader's). */
  get leading(): boolean {
    return this.writer !== null;
  }

  /** Nodes with an open session, for tests and the manager's status. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  get writerStats(): { readonly commits: number; readonly items: number; readonly refused: number } {
    return this.writer?.stats ?? { commits: 0, items: 0, refused: 0 };
  }

  start(): void {
    if (this.checkTimer !== null || this.stopped) return;
    this.checkLeadership();
    this.checkTimer = setInterval(() => this.checkLeadership(), this.config.leadershipCheckMs);
  }

  /** Ends every session (agents fail over) and stops. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.checkTimer !== null) clearInterval(this.checkTimer);
    this.checkTimer = null;
    this.stepDown(new DispatcherError('ERR_DISPATCHER_STOPPED', 'the dispatcher on this manager is shutting down: use another manager'));
  }

  /** The grpc-js implementation (for `server.addService(DISPATCHER_SERVICE, …)`: assignments are written as bytes). */
  implementation(): DispatcherServer {
    return {
      session: (call) => {
        this.session(call).catch((err: unknown) => this.endWithError(call, err));
      },
      heartbeat: (call, callback) => {
        try {
          callback(null, this.heartbeat(this.callerOf(call), call.request));
        } catch (err) {
          callback(this.toServiceError(err));
        }
      },
      updateTaskStatus: (call, callback) => {
        this.updateTaskStatus(this.callerOf(call), call.request).then(
          (res) => callback(null, res),
          (err: unknown) => callback(this.toServiceError(err)),
        );
      },
      assignments: (call) => {
        try {
          this.assignments(call);
        } catch (err) {
          this.endWithError(call, err);
        }
      },
      nodeStream: (call) => this.nodeStream(call),
    };
  }

  /**
   * Heartbeats and status batches of one session over one stream: each request is answered (its
   * request_id echoed) as the unary Heartbeat / UpdateTaskStatus would answer it — a status batch
   * once committed; an error those would return ends the stream with it.
   */
  private nodeStream(call: grpc.ServerDuplexStream<NodeStreamRequest, NodeStreamResponse>): void {
    let failed = false;
    let halfClosed = false;
    let inFlight = 0;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      if (!call.cancelled && !call.writableEnded) call.emit('error', this.toServiceError(err));
    };
    const answer = (res: NodeStreamResponse): void => {
      if (!failed && !call.cancelled && !call.writableEnded) call.write(res);
    };
    const endIfDone = (): void => {
      if (halfClosed && inFlight === 0 && !failed && !call.cancelled && !call.writableEnded) call.end();
    };
    let peer: PeerIdentity;
    try {
      peer = this.callerOf(call);
    } catch (err) {
      fail(err);
      return;
    }
    call.on('data', (req: NodeStreamRequest) => {
      const body = req.body;
      if (failed || body === undefined) return;
      if (body.$case === 'heartbeat') {
        try {
          answer({ requestId: req.requestId, body: { $case: 'heartbeat', heartbeat: this.heartbeat(peer, body.heartbeat) } });
        } catch (err) {
          fail(err);
        }
        return;
      }
      inFlight++;
      this.updateTaskStatus(peer, body.status).then(
        (res) => {
          inFlight--;
          answer({ requestId: req.requestId, body: { $case: 'status', status: res } });
          endIfDone();
        },
        (err: unknown) => {
          inFlight--;
          fail(err);
        },
      );
    });
    call.on('end', () => {
      halfClosed = true;
      endIfDone();
    });
    call.on('error', () => {
      failed = true;
    });
  }

  // ------------------------------------------------------------------------------ leadership

  /** The heartbeat period in force: the Cluster object's setting, else the configured default. */
  heartbeatPeriodMs(): number {
    const cluster = this.store.find('cluster')[0];
    const ns = cluster?.Spec.Dispatcher?.HeartbeatPeriod;
    return ns !== undefined && ns > 0 ? Math.max(1, Math.round(ns / NS_PER_MS)) : this.config.heartbeatPeriodMs;
  }

  private graceMs(): number {
    return (this.heartbeatPeriodMs() + this.config.heartbeatJitterMs) * this.config.gracePeriodMultiplier;
  }

  private checkLeadership(): void {
    if (this.stopped) return;
    const isLeader = this.deps.leadership.isLeader();
    if (isLeader && !this.leading) this.becomeLeader();
    else if (!isLeader && this.leading) this.stepDown(notLeader(this.deps.leadership.leader()?.addr ?? null));
    // The manager list or the cluster's root CAs (a root rotation) changed: every session hears it.
    const managers = JSON.stringify([this.managerList(), this.deps.rootCaPem?.() ?? '']);
    if (managers !== this.managersJson) {
      const first = this.managersJson === '';
      this.managersJson = managers;
      if (!first) for (const s of this.sessions.values()) if (s.sessionCall !== null) this.write(s.sessionCall, this.sessionMessage(s));
    }
  }

  private becomeLeader(): void {
    this.log.info('dispatcher: this manager leads; serving sessions');
    this.writer = new BatchWriter({
      store: this.store,
      logger: this.log,
      maxBatchItems: this.config.maxBatchItems,
      maxBatchIntervalMs: this.config.maxBatchIntervalMs,
      maxInflightCommits: this.config.maxInflightCommits,
      maxPendingItems: this.config.maxPendingItems,
    });
    this.startWatch();
    // Nodes that were ready under the previous leader get one grace period to open a session here.
    const writer = this.writer;
    for (const node of this.store.find('node')) {
      if (node.Status.State !== 'ready' || this.sessions.has(node.ID)) continue;
      writer.enqueueNode(node.ID, { kind: 'not-ready', state: 'unknown', message: "Node moved to 'unknown' state due to leadership change" }).catch(() => undefined);
      this.unknownTimers.set(
        node.ID,
        setTimeout(() => {
          this.unknownTimers.delete(node.ID);
          if (this.writer === writer && !this.sessions.has(node.ID)) this.markDown(node.ID);
        }, this.graceMs()),
      );
    }
  }

  private stepDown(reason: DispatcherError): void {
    if (this.writer !== null) this.log.info({ reason: reason.message }, 'dispatcher: not serving sessions any more');
    this.writer?.close(reason.message);
    this.writer = null;
    this.watch?.close();
    this.watch = null;
    for (const t of this.unknownTimers.values()) clearTimeout(t);
    this.unknownTimers.clear();
    for (const s of [...this.sessions.values()]) this.dropSession(s, reason);
  }

  private managerList(): WeightedPeer[] {
    return this.deps.managers().map((m) => ({ nodeId: m.nodeId, addr: m.addr, weight: 1 }));
  }

  private requireLeader(): BatchWriter {
    if (this.writer === null) throw notLeader(this.deps.leadership.leader()?.addr ?? null);
    return this.writer;
  }

  // ------------------------------------------------------------------------------ sessions

  private callerOf(call: { getAuthContext(): { sslPeerCertificate?: import('node:tls').PeerCertificate } | null }): PeerIdentity {
    const peer = peerIdentity(call);
    if (peer === null) throw new DispatcherError('ERR_DISPATCHER_UNAUTHENTICATED', 'dispatcher calls need a node certificate of this cluster');
    return peer;
  }

  private validSession(nodeId: string, sessionId: string): NodeSession {
    const s = this.sessions.get(nodeId);
    if (s === undefined || s.sessionId !== sessionId) throw sessionInvalid(nodeId, sessionId);
    return s;
  }

  private async session(call: SessionCall): Promise<void> {
    const peer = this.callerOf(call);
    if (this.writer === null) {
      const leader = this.deps.leadership.leader();
      this.write(call, {
        sessionId: '',
        managers: this.managerList(),
        networkBootstrapKeys: [],
        rootCaPem: Buffer.alloc(0),
        leaderAddr: leader?.addr ?? '',
        leaderNodeId: leader?.nodeId ?? '',
        nodeJson: Buffer.alloc(0),
        heartbeatPeriodMs: 0,
      });
      throw notLeader(leader?.addr ?? null);
    }
    const writer = this.writer;
    let description;
    try {
      description = nodeDescriptionFromWire(call.request.descriptionJson, call.request.description);
    } catch (err) {
      throw new DispatcherError('ERR_DISPATCHER_INVALID', `session request from node ${peer.nodeId}: ${(err as Error).message}`);
    }
    await writer.enqueueNode(peer.nodeId, { kind: 'ready', description, role: nodeRoleOfCertificate(peer.role), addr: peerHost(call.getPeer()) });
    if (this.writer !== writer) throw notLeader(this.deps.leadership.leader()?.addr ?? null);
    if (call.cancelled) return;

    const previous = this.sessions.get(peer.nodeId);
    const reuse = previous !== undefined && call.request.sessionId !== '' && previous.sessionId === call.request.sessionId;
    const sessionId = reuse ? previous.sessionId : randomBytes(16).toString('hex');
    if (previous !== undefined && !reuse) this.dropSession(previous, new DispatcherError('ERR_DISPATCHER_SESSION_INVALID', `node ${peer.nodeId} opened a new session`));
    const unknown = this.unknownTimers.get(peer.nodeId);
    if (unknown !== undefined) clearTimeout(unknown);
    this.unknownTimers.delete(peer.nodeId);

    let s: NodeSession;
    if (reuse) {
      s = previous;
      if (s.sessionCall !== null && s.sessionCall !== call) this.end(s.sessionCall, new DispatcherError('ERR_DISPATCHER_SESSION_INVALID', 'the session was reopened on another stream'));
      s.sessionCall = call;
      this.armExpiry(s);
    } else {
      s = { nodeId: peer.nodeId, sessionId, expiry: null, expiryMs: 0, sessionCall: call, assignments: null, lastSpecJson: '' };
      this.sessions.set(peer.nodeId, s);
      this.armExpiry(s);
    }
    const detach = (): void => {
      if (s.sessionCall === call) s.sessionCall = null;
    };
    call.on('cancelled', detach);
    call.on('close', detach);
    this.log.info({ nodeId: peer.nodeId, sessionId, reused: reuse }, 'dispatcher: session opened');
    this.write(call, this.sessionMessage(s));
  }

  private sessionMessage(s: NodeSession): SessionMessage {
    const node = this.store.get('node', s.nodeId);
    s.lastSpecJson = JSON.stringify(node?.Spec ?? null);
    return {
      sessionId: s.sessionId,
      managers: this.managerList(),
      networkBootstrapKeys: [],
      rootCaPem: Buffer.from(this.deps.rootCaPem?.() ?? '', 'utf8'),
      leaderAddr: '',
      leaderNodeId: '',
      nodeJson: node === undefined ? Buffer.alloc(0) : encodeJson(node),
      heartbeatPeriodMs: this.heartbeatPeriodMs(),
    };
  }

  private armExpiry(s: NodeSession, periodMs = this.heartbeatPeriodMs()): void {
    const grace = (periodMs + this.config.heartbeatJitterMs) * this.config.gracePeriodMultiplier;
    // Every heartbeat re-arms: the same grace restarts the timer in place (no new timer per beat).
    if (s.expiry !== null && s.expiryMs === grace) {
      s.expiry.refresh();
      return;
    }
    if (s.expiry !== null) clearTimeout(s.expiry);
    s.expiry = setTimeout(() => this.expire(s), grace);
    s.expiryMs = grace;
  }

  private expire(s: NodeSession): void {
    if (this.sessions.get(s.nodeId) !== s) return;
    this.log.warn({ nodeId: s.nodeId, graceMs: this.graceMs() }, 'dispatcher: node missed its heartbeats; marking it down');
    this.dropSession(s, new DispatcherError('ERR_DISPATCHER_SESSION_INVALID', `node ${s.nodeId} missed its heartbeat grace period: open a new session`));
    this.markDown(s.nodeId);
  }

  private markDown(nodeId: string): void {
    this.writer?.enqueueNode(nodeId, { kind: 'not-ready', state: 'down', message: 'heartbeat failure' }).catch((err: unknown) => {
      this.log.warn({ err, nodeId }, 'dispatcher: could not mark a node down');
    });
  }

  private dropSession(s: NodeSession, reason: DispatcherError): void {
    if (s.expiry !== null) clearTimeout(s.expiry);
    s.expiry = null;
    if (this.sessions.get(s.nodeId) === s) this.sessions.delete(s.nodeId);
    if (s.sessionCall !== null) this.end(s.sessionCall, reason);
    if (s.assignments !== null) {
      releaseHeld(s.assignments);
      this.end(s.assignments.call, reason);
    }
    s.sessionCall = null;
    s.assignments = null;
  }

  private heartbeat(peer: PeerIdentity, req: HeartbeatRequest): HeartbeatResponse {
    this.requireLeader();
    const s = this.validSession(peer.nodeId, req.sessionId);
    const period = this.heartbeatPeriodMs();
    this.armExpiry(s, period);
    this.heartbeatsHandled++;
    const jitter = (Math.random() * 2 - 1) * this.config.heartbeatJitterMs;
    return { periodMs: Math.max(1, Math.round(period + jitter)) };
  }

  // ------------------------------------------------------------------------------ task status

  private async updateTaskStatus(peer: PeerIdentity, req: UpdateTaskStatusRequest): Promise<UpdateTaskStatusResponse> {
    const writer = this.requireLeader();
    this.validSession(peer.nodeId, req.sessionId);
    const refused: { taskId: string; reason: string }[] = [];
    const accepted: { taskId: string; status: TaskStatus }[] = [];
    // Check every update before queueing any: a request touching another node's task changes nothing.
    for (const u of req.updates) {
      const task = this.store.get('task', u.taskId);
      if (task === undefined) {
        refused.push({ taskId: u.taskId, reason: `task ${u.taskId} no longer exists` });
        continue;
      }
      if (task.NodeID !== peer.nodeId) {
        this.log.warn({ nodeId: peer.nodeId, taskId: u.taskId, owner: task.NodeID }, 'dispatcher: a node tried to update a task of another node');
        throw new DispatcherError('ERR_DISPATCHER_FOREIGN_TASK', `node ${peer.nodeId} cannot update task ${u.taskId}: it is assigned to node ${task.NodeID === '' ? '(none)' : task.NodeID}`);
      }
      const status = u.status === undefined ? null : taskStatusFromProto(u.status);
      if (status === null) {
        refused.push({ taskId: u.taskId, reason: 'the update carries no known task state' });
        continue;
      }
      accepted.push({ taskId: u.taskId, status });
    }
    if (accepted.length === 0) return { refused };
    const written = await writer.enqueueTaskStatuses(peer.nodeId, accepted);
    return { refused: refused.length === 0 ? written : [...refused, ...written] };
  }

  // ------------------------------------------------------------------------------ assignments

  private assignments(call: AssignmentsCall): void {
    const peer = this.callerOf(call);
    this.requireLeader();
    const s = this.validSession(peer.nodeId, call.request.sessionId);
    if (s.assignments !== null) this.end(s.assignments.call, new DispatcherError('ERR_DISPATCHER_SESSION_INVALID', 'a newer assignments stream replaced this one'));
    const stream: AssignmentStream = { call, set: new AssignmentSet(peer.nodeId), baseVersion: 0, sequence: 0, appliesTo: '', held: [], holdTimer: null, lastSentAt: -Infinity };
    s.assignments = stream;
    const detach = (): void => {
      releaseHeld(stream);
      if (s.assignments === stream) s.assignments = null;
    };
    call.on('cancelled', detach);
    call.on('close', detach);
    this.sendComplete(stream);
  }

  private sendComplete(stream: AssignmentStream): void {
    // The complete set supersedes whatever the window held.
    releaseHeld(stream);
    const items = this.store.view((tx) => {
      stream.baseVersion = tx.version;
      return stream.set.complete(tx);
    });
    this.sendAssignments(
      stream,
      AssignmentsMessage_Type.TYPE_COMPLETE,
      items.map((item) => this.change(item, false)),
    );
  }

  private change(item: AssignedItem, remove: boolean): EncodedChange {
    return encodedChange(item.kind, item.kind === 'network' ? this.networkJson(item.object) : objectJson(item.object), remove);
  }

  /**
   * A network view's JSON, encoded once however many nodes it goes to: a pass builds one view
   * object per network and every node sharing the network gets that object (it holds every live
   * task of the network, so encoding it per node cost O(nodes × tasks) per change).
   */
  private networkJson(view: NetworkPeers): string {
    let json = this.viewJson.get(view);
    if (json === undefined) {
      json = JSON.stringify(view);
      this.viewJson.set(view, json);
    }
    return json;
  }

  /**
   * Sends changes as one message, or as several (`more` on all but the last) when their JSON is
   * over maxAssignmentMessageBytes; an empty COMPLETE still goes out as one message. Each message
   * is encoded here (assignment-wire.ts) and written as bytes.
   */
  private sendAssignments(stream: AssignmentStream, type: AssignmentsMessage_Type, changes: readonly EncodedChange[]): void {
    let start = 0;
    // Bounded: each round sends at least one change, or the one empty message.
    for (;;) {
      let end = start;
      let size = 0;
      while (end < changes.length && (end === start || size + changes[end]!.bytes <= this.config.maxAssignmentMessageBytes)) {
        size += changes[end]!.bytes;
        end++;
      }
      const more = end < changes.length;
      stream.sequence++;
      const resultsIn = String(stream.sequence);
      const chunk = start === 0 && !more ? changes : changes.slice(start, end);
      this.write(stream.call as unknown as grpc.ServerWritableStream<unknown, EncodedAssignments>, new EncodedAssignments(encodeAssignmentsMessage(type, stream.appliesTo, resultsIn, chunk, more)));
      stream.appliesTo = resultsIn;
      if (!more) return;
      start = end;
    }
  }

  // ------------------------------------------------------------------------------ store watch

  private startWatch(): void {
    const watch = this.store.watch({ kinds: WATCHED_KINDS });
    this.watch = watch;
    void this.runWatch(watch);
  }

  private async runWatch(watch: StoreWatch): Promise<void> {
    // Runs until the watch is closed (stepDown/stop), one batch of applied events per pass.
    for (;;) {
      let events: ChangeEvent[];
      try {
        const first = await watch.next();
        if (first.done === true) return;
        events = [first.value];
        for (let ev = watch.poll(); ev !== null; ev = watch.poll()) events.push(ev);
      } catch (err) {
        if (!(err instanceof ResyncRequiredError) || this.watch !== watch) return;
        this.log.warn({ err }, 'dispatcher: store watch lost continuity; resending every node its complete assignment set');
        this.startWatch();
        for (const s of this.sessions.values()) if (s.assignments !== null) this.sendComplete(s.assignments);
        return;
      }
      if (this.watch !== watch) return;
      try {
        this.route(events);
      } catch (err) {
        this.log.error({ err }, 'dispatcher: routing store changes to sessions failed');
      }
    }
  }

  private route(events: readonly ChangeEvent[]): void {
    const byNode = new Map<string, ChangeEvent[]>();
    const shared: ChangeEvent[] = [];
    const add = (nodeId: string, ev: ChangeEvent): void => {
      const list = byNode.get(nodeId);
      if (list === undefined) byNode.set(nodeId, [ev]);
      else list.push(ev);
    };
    for (const ev of events) {
      if (ev.kind === 'task') {
        if (ev.object.NodeID !== '') add(ev.object.NodeID, ev);
        if (ev.old !== undefined && ev.old.NodeID !== '' && ev.old.NodeID !== ev.object.NodeID) add(ev.old.NodeID, ev);
      } else if (ev.kind === 'secret' || ev.kind === 'config') {
        shared.push(ev);
      } else if (ev.kind === 'node') {
        this.nodeChanged(ev.object, ev.action === 'delete');
      }
    }
    // Network views: computed once per network per pass, whichever nodes take part in it.
    const touched = this.store.view((tx) => touchedNetworks(events, tx));
    const cache = touched.size > 0 ? this.store.view((tx) => new NetworkPeersCache(tx)) : null;
    // Secrets and configs go only to the sessions whose set holds them (dependencyEvents): a new
    // one, or one no connected node's tasks use, is no node's news and costs no session a visit.
    const sharedUsed = shared.length > 0 && this.anySessionHolds(shared);
    // Only task changes (the common case): visit the nodes they name, not every session.
    const targets: Iterable<NodeSession | undefined> =
      cache === null && !sharedUsed ? [...byNode.keys()].map((id) => this.sessions.get(id)) : this.sessions.values();
    const now = performance.now();
    for (const s of targets) {
      const stream = s?.assignments ?? null;
      if (s === undefined || stream === null) continue;
      const fresh = freshEvents(byNode.get(s.nodeId), sharedUsed ? stream.set.dependencyEvents(shared) : NO_EVENTS, stream.baseVersion);
      if (fresh.length === 0 && cache === null) continue;
      // Within the node's send window (and no network view to update): held for the window's end.
      if (cache === null && this.holds(stream, now, fresh.length)) {
        for (const ev of fresh) stream.held.push(ev);
        const quiet = now - stream.lastSentAt >= this.config.assignmentWindowMs;
        stream.holdTimer ??= setTimeout(() => this.sendHeld(stream), quiet ? this.config.assignmentFirstDelayMs : stream.lastSentAt + this.config.assignmentWindowMs - now);
        continue;
      }
      this.sendDelta(stream, fresh, touched, cache, now);
    }
  }

  private anySessionHolds(shared: readonly ChangeEvent[]): boolean {
    for (const s of this.sessions.values()) if (s.assignments !== null && s.assignments.set.holdsAnyDependency(shared)) return true;
    return false;
  }

  private holds(stream: AssignmentStream, now: number, adding: number): boolean {
    const window = this.config.assignmentWindowMs;
    if (window <= 0 || stream.held.length + adding > this.config.maxHeldEvents) return false;
    return stream.holdTimer !== null || now - stream.lastSentAt < window || this.config.assignmentFirstDelayMs > 0;
  }

  /** The window ended: what it held goes now, in one message. */
  private sendHeld(stream: AssignmentStream): void {
    stream.holdTimer = null;
    if (stream.held.length === 0 || this.ended.has(stream.call) || this.watch === null) {
      stream.held = [];
      return;
    }
    try {
      this.sendDelta(stream, [], new Set(), null, performance.now());
    } catch (err) {
      this.log.error({ err, nodeId: stream.set.nodeId }, 'dispatcher: sending held assignment changes failed');
    }
  }

  /** Folds the held events and `fresh` into the node's set and sends what changed for it. */
  private sendDelta(stream: AssignmentStream, fresh: readonly ChangeEvent[], touched: ReadonlySet<string>, cache: NetworkPeersCache | null, now: number): void {
    // Events of one routing pass are in version order; held ones and shared ones are merged in.
    let mine = stream.held.length > 0 ? [...stream.held, ...fresh] : fresh;
    releaseHeld(stream);
    if (!inVersionOrder(mine)) mine = [...mine].sort((a, b) => a.version - b.version);
    const delta = this.store.view((tx): AssignmentDelta => {
      const own = mine.length > 0 ? stream.set.applyChanges(mine, tx) : { updates: [], removes: [] };
      if (cache === null) return own;
      const nets = stream.set.networkChanges(touched, cache, tx);
      return { updates: [...own.updates, ...nets.updates], removes: [...own.removes, ...nets.removes] };
    });
    if (delta.updates.length + delta.removes.length === 0) return;
    stream.lastSentAt = now;
    const changes: EncodedChange[] = [];
    for (const i of delta.updates) changes.push(this.change(i, false));
    for (const i of delta.removes) changes.push(this.change(i, true));
    this.sendAssignments(stream, AssignmentsMessage_Type.TYPE_INCREMENTAL, changes);
  }

  private nodeChanged(node: Node, deleted: boolean): void {
    const s = this.sessions.get(node.ID);
    if (s === undefined) return;
    if (deleted) {
      this.log.info({ nodeId: node.ID }, 'dispatcher: node removed from the cluster; ending its session');
      this.dropSession(s, new DispatcherError('ERR_DISPATCHER_FOREIGN_TASK', `node ${node.ID} was removed from the cluster`));
      return;
    }
    if (s.sessionCall !== null && JSON.stringify(node.Spec) !== s.lastSpecJson) this.write(s.sessionCall, this.sessionMessage(s));
  }

  // ------------------------------------------------------------------------------ stream plumbing

  private write<T>(call: grpc.ServerWritableStream<unknown, T>, message: T): void {
    if (this.ended.has(call as AnyStream) || call.cancelled || call.writableEnded) return;
    call.write(message);
    if (call.writableLength > this.config.maxStreamBufferedMessages) {
      this.end(call as AnyStream, new DispatcherError('ERR_DISPATCHER_BUSY', `the node reads too slowly (${call.writableLength} messages waiting): reconnect for a complete set`));
    }
  }

  private end(call: AnyStream, err: DispatcherError): void {
    if (this.ended.has(call)) return;
    this.ended.add(call);
    if (call.cancelled || call.writableEnded) return;
    call.emit('error', err.toServiceError());
  }

  private endWithError(call: AnyStream, err: unknown): void {
    if (!(err instanceof DispatcherError)) this.log.error({ err }, 'dispatcher: stream failed');
    this.end(call, err instanceof DispatcherError ? err : new DispatcherError('ERR_DISPATCHER_STOPPED', `dispatcher: ${(err as Error).message}`));
  }

  private toServiceError(err: unknown): grpc.ServiceError {
    if (err instanceof DispatcherError) return err.toServiceError();
    this.log.error({ err }, 'dispatcher: call failed');
    return new DispatcherError('ERR_DISPATCHER_STOPPED', `dispatcher: ${(err as Error).message}`).toServiceError();
  }
}

/**
 * A node's events of a routing pass (its tasks', then secrets' and configs') after the version its
 * set was listed at: a new array the caller may keep (the usual case, the node's own list as is).
 */
function freshEvents(own: ChangeEvent[] | undefined, shared: readonly ChangeEvent[], baseVersion: number): ChangeEvent[] {
  const all = own === undefined ? [...shared] : shared.length === 0 ? own : [...own, ...shared];
  // Events arrive in version order per list: only the first few can be at or before baseVersion.
  let i = 0;
  while (i < all.length && all[i]!.version <= baseVersion) i++;
  if (i === 0 && shared.length === 0) return all;
  return all.slice(i).filter((ev) => ev.version > baseVersion);
}

function inVersionOrder(events: readonly ChangeEvent[]): boolean {
  for (let i = 1; i < events.length; i++) if (events[i - 1]!.version > events[i]!.version) return false;
  return true;
}

/** Drops what a stream's send window held (its stream ended, or a complete set replaces it). */
function releaseHeld(stream: AssignmentStream): void {
  if (stream.holdTimer !== null) clearTimeout(stream.holdTimer);
  stream.holdTimer = null;
  stream.held = [];
}

/**
 * Mounts a dispatcher on a cluster server (the manager runtime calls this with its server) and
 * starts its leadership check. Call `stop()` on the result before closing the server.
 */
export function registerDispatcher(server: grpc.Server, deps: DispatcherDeps): Dispatcher {
  const dispatcher = new Dispatcher(deps);
  server.addService(DISPATCHER_SERVICE, dispatcher.implementation());
  dispatcher.start();
  return dispatcher;
}
