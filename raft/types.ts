// The data that crosses the Raft core's boundary: entries, hard state, snapshots, messages
// and the Ready batch. Plain readonly data, no behaviour: the core, the durable storage,
// the transport codec and the simulator all speak these types.

/** A node's identity in a Raft group. Numbers and strings are both accepted; never mixed in one group. */
export type NodeId = number | string;

/** `normal` carries application data (empty data = the leader's no-op); `conf` carries a ConfChange. */
export type EntryType = 'normal' | 'conf';

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** One-server-at-a-time membership change, carried in the data of a `conf` entry. */
export interface ConfChange {
  readonly type: 'addNode' | 'addLearner' | 'removeNode';
  readonly nodeId: NodeId;
  /** Opaque application context (e.g. the new member's address). */
  readonly context?: string;
}

/** What must be durable before a node answers anyone: its term, its vote and its commit index. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** The application's state at `metadata.index`; the log before it may be dropped. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** Leader → follower: entries after (index, logTerm), and the leader's commit. */
export interface MsgApp extends MessageBase {
  readonly type: 'app';
  readonly index: number;
  readonly logTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Follower → leader. Accepted: `index` is the follower's last index matching the leader.
 * Rejected: `index` is the probed index, and (`rejectHint`, `logTerm`) the follower's hint:
 * the largest index ≤ the probe whose term ≤ the probe's term, so the leader can skip a term a round.
 */
export interface MsgAppResp extends MessageBase {
  readonly type: 'appResp';
  readonly index: number;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly logTerm: number;
}

/** (Pre-)vote request carrying the candidate's last log id; `transfer` marks a leader-transfer campaign. */
export interface MsgVote extends MessageBase {
  readonly type: 'vote' | 'preVote';
  readonly index: number;
  readonly logTerm: number;
  readonly transfer: boolean;
}

export interface MsgVoteResp extends MessageBase {
  readonly type: 'voteResp' | 'preVoteResp';
  readonly reject: boolean;
}

/** Leader → follower liveness; `commit` is min(follower's match, leader's commit); `context` tags a ReadIndex round. */
export interface MsgHeartbeat extends MessageBase {
  readonly type: 'heartbeat';
  readonly commit: number;
  readonly context: string | null;
}

export interface MsgHeartbeatResp extends MessageBase {
  readonly type: 'heartbeatResp';
  readonly context: string | null;
}

/** Leader → far-behind follower: install this snapshot. The transport may chunk it. */
export interface MsgSnap extends MessageBase {
  readonly type: 'snap';
  readonly snapshot: Snapshot;
}

/** Leader → transfer target: campaign now, skipping pre-vote and leader stickiness. */
export interface MsgTimeoutNow extends MessageBase {
  readonly type: 'timeoutNow';
}

/** Follower → leader: a ReadIndex request forwarded for a local reader. */
export interface MsgReadIndex extends MessageBase {
  readonly type: 'readIndex';
  readonly context: string;
}

/** Leader → follower: the read index for a forwarded request (`index` 0 with `reject` if refused). */
export interface MsgReadIndexResp extends MessageBase {
  readonly type: 'readIndexResp';
  readonly context: string;
  readonly index: number;
  readonly reject: boolean;
}

/** Follower → leader: please transfer leadership to `target`. */
export interface MsgTransferLeader extends MessageBase {
  readonly type: 'transferLeader';
  readonly target: NodeId;
}

export type Message =
  | MsgApp
  | MsgAppResp
  | MsgVote
  | MsgVoteResp
  | MsgHeartbeat
  | MsgHeartbeatResp
  | MsgSnap
  | MsgTimeoutNow
  | MsgReadIndex
  | MsgReadIndexResp
  | MsgTransferLeader;

export type MessageType = Message['type'];

/** The answer to a ReadIndex request: serve the read once applied ≥ index. */
export interface ReadState {
  readonly index: number;
  readonly context: string;
}

export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * One batch of work for the driver. The driver must, in order:
 * 1. persist `snapshot` (if any), then `entries` (truncating any persisted entries at or after
 *    the first one's index), then `hardState` (if any) — atomically, synced when `mustSync`;
 * 2. only then send `messages` (votes and acknowledgements promise what was just persisted);
 *    `earlyMessages` may be sent at once, before the write (a leader's appends and heartbeats in a
 *    Ready that changes neither term nor vote: thesis §10.2.1 — the leader counts its own entries
 *    toward a commit only once they are durable, in advance());
 * 3. apply `snapshot` and then `committedEntries` to the state machine, and serve `readStates`
 *    once applied ≥ their index. Committed entries at or below the last index that was durable
 *    before this Ready (all of them on a leader, which counts itself toward a commit only for
 *    what it persisted) may be applied while step 1 is in flight, when the Ready has no snapshot;
 *    a commit-index-only hard state (`mustSync` false, no entries) may be written with a later
 *    Ready instead of its own (a lost commit index is learned again);
 * 4. call `advance()` before asking for the next Ready.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly earlyMessages: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };
