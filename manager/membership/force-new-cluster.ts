// `swarm init --force-new-cluster` on a surviving manager: keep every committed change, make this
// manager the only member.
//
// Done on the closed log, before the Raft node starts:
//   1. open the DurableLog; rebuild the store from its snapshot plus EVERY entry after it — also
//      those past this node's commit index: a follower learns the commit index one heartbeat late,
//      so its last entries may well have been committed (and acknowledged) by the lost majority,
//      and a leader elected from this log would commit them anyway. (etcd's --force-new-cluster
//      drops them; that can lose acknowledged writes, which the test here caught.) Membership
//      entries among them are not replayed: the configuration is forced below;
//   2. save one new snapshot at last index + 1 holding that store, with the configuration
//      {voters: [self]} — a snapshot replaces the whole stored log, and the hard state's commit
//      moves to the snapshot;
//   3. close. The node then starts normally, alone in its configuration, elects itself and serves.
// The extra index stands for the forced configuration change; no peer ever sees an entry there.
import type { Logger } from 'pino';

import { DurableLog } from '../../raft/storage/index.js';
import { MemoryStore } from '../store/index.js';

export interface ForcedConfiguration {
  readonly index: number;
  readonly term: number;
  /** Entries this node had not yet seen committed, kept and applied. */
  readonly keptPastCommit: number;
}

export async function forceNewCluster(dir: string, dek: Uint8Array, selfId: string, logger: Logger): Promise<ForcedConfiguration> {
  const log = await DurableLog.open(dir, { dek, logger });
  try {
    const mem = log.memory;
    const { hardState } = mem.initialState();
    const snap = mem.snapshot();
    const store = new MemoryStore({ logger });
    if (snap.metadata.index > 0) store.restore(snap);
    const last = mem.lastIndex();
    const from = snap.metadata.index + 1;
    if (last >= from) {
      for (const e of mem.entries(from, last + 1, Number.MAX_SAFE_INTEGER)) if (e.type === 'normal' && e.data.byteLength > 0) store.applyEntry(e);
    }
    const index = Math.max(last, snap.metadata.index) + 1;
    const term = Math.max(hardState.term, snap.metadata.term, 1);
    const keptPastCommit = Math.max(0, last - hardState.commit);
    await log.save({
      snapshot: { metadata: { index, term, confState: { voters: [selfId], learners: [] } }, data: store.snapshotData() },
      entries: [],
      hardState: { term, vote: hardState.vote, commit: index },
      mustSync: true,
    });
    store.close();
    logger.warn({ index, term, keptPastCommit }, 'forced a new single-manager cluster configuration');
    return { index, term, keptPastCommit };
  } finally {
    await log.close();
  }
}
