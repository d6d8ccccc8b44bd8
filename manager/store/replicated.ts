// A manager's store wired to its Raft node: the node's apply/restore/snapshot hooks drive the
// store, and the node is the store's proposer. This is the one place the two meet.
//
//   store.update(fn) ─► encodeBatch ─► RaftNode.propose ─► (Raft: persist, replicate, commit)
//        ▲                                                        │
//        └── waiter outcome ◄── MemoryStore.applyEntry ◄── RaftNode apply hook (every manager)
//
// Snapshots: every `snapshotIntervalEntries` applied entries the node asks the store for
// `snapshotData()` and records it (sealed) in the DurableLog, then compacts the log keeping
// `snapshotKeepEntries` entries behind it. On start the node hands the stored snapshot to
// `store.restore` and replays the log after it; a follower too far behind gets the leader's
// snapshot the same way.
import type { Logger } from 'pino';
import { RaftNode } from '../../raft/node.js';
import type { Transport } from '../../raft/transport/transport.js';
import type { NodeId, SoftState } from '../../raft/types.js';
import { MemoryStore } from './memory-store.js';

export const DEFAULT_SNAPSHOT_INTERVAL_ENTRIES = 10_000;
export const DEFAULT_SNAPSHOT_KEEP_ENTRIES = 500;

export interface ReplicatedStoreOptions {
  readonly id: NodeId;
  /** Bootstrap voters, used only when the log is empty. */
  readonly peers?: readonly NodeId[];
  /** The Raft log's directory (LevelDB). */
  readonly dir: string;
  /** 32-byte data-encryption key sealing every entry and snapshot. */
  readonly dek: Uint8Array;
  /** Owned by the node from here on: closed by close(). */
  readonly transport: Transport;
  /** Default 10,000 (Docker's SnapshotInterval). */
  readonly snapshotIntervalEntries?: number;
  /** Default 500 (Docker's LogEntriesForSlowFollowers). */
  readonly snapshotKeepEntries?: number;
  readonly watchRingEvents?: number;
  readonly tickMs?: number;
  readonly electionTick?: number;
  readonly heartbeatTick?: number;
  readonly proposeTimeoutMs?: number;
  readonly onSoftState?: (s: SoftState) => void;
  readonly onFatal?: (err: Error) => void;
  readonly logger?: Logger;
}

export class ReplicatedStore {
  private constructor(readonly store: MemoryStore, readonly node: RaftNode) {}

  static async open(opts: ReplicatedStoreOptions): Promise<ReplicatedStore> {
    const store = new MemoryStore({
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
      ...(opts.watchRingEvents !== undefined ? { watchRingEvents: opts.watchRingEvents } : {}),
    });
    const node = await RaftNode.open({
      id: opts.id,
      ...(opts.peers !== undefined ? { peers: opts.peers } : {}),
      dir: opts.dir,
      dek: opts.dek,
      transport: opts.transport,
      apply: (e) => store.applyEntry(e),
      restore: (snap) => store.restore(snap),
      snapshotData: () => store.snapshotData(),
      snapshotIntervalEntries: opts.snapshotIntervalEntries ?? DEFAULT_SNAPSHOT_INTERVAL_ENTRIES,
      snapshotKeepEntries: opts.snapshotKeepEntries ?? DEFAULT_SNAPSHOT_KEEP_ENTRIES,
      ...(opts.tickMs !== undefined ? { tickMs: opts.tickMs } : {}),
      ...(opts.electionTick !== undefined ? { electionTick: opts.electionTick } : {}),
      ...(opts.heartbeatTick !== undefined ? { heartbeatTick: opts.heartbeatTick } : {}),
      ...(opts.proposeTimeoutMs !== undefined ? { proposeTimeoutMs: opts.proposeTimeoutMs } : {}),
      ...(opts.onSoftState !== undefined ? { onSoftState: opts.onSoftState } : {}),
      ...(opts.onFatal !== undefined ? { onFatal: opts.onFatal } : {}),
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
    });
    store.setProposer(node);
    return new ReplicatedStore(store, node);
  }

  get isLeader(): boolean {
    return this.node.status().role === 'leader';
  }

  /** Ends the store's watches, then closes the node (its transport and log). */
  async close(): Promise<void> {
    this.store.close();
    await this.node.close();
  }
}
