// Every manager applies the Cluster object's Raft settings to its own Raft node while it runs:
// `Spec.Raft.SnapshotInterval` (take a snapshot every this many applied entries) and
// `Spec.Raft.LogEntriesForSlowFollowers` (entries kept behind a snapshot), as `swarm update
// --snapshot-interval` changes them. (ElectionTick / HeartbeatTick need a restart, as in swarmkit.)
import type { Logger } from 'pino';

import type { RaftNode } from '../../raft/node.js';
import { ResyncRequiredError, type MemoryStore } from '../store/index.js';

export interface RaftSettingsView {
  readonly Spec: { readonly Raft?: { readonly SnapshotInterval?: number; readonly LogEntriesForSlowFollowers?: number } };
}

export interface SnapshotPolicy {
  readonly intervalEntries: number;
  readonly keepEntries: number;
}

/** The policy a Cluster object asks for; null when it names neither setting (keep the node's own). */
export function snapshotPolicyOf(cluster: RaftSettingsView, current: SnapshotPolicy): SnapshotPolicy | null {
  const raft = cluster.Spec.Raft;
  const interval = raft?.SnapshotInterval;
  const keep = raft?.LogEntriesForSlowFollowers;
  const valid = (n: number | undefined): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;
  if (!valid(interval) && !valid(keep)) return null;
  return { intervalEntries: valid(interval) && interval > 0 ? interval : current.intervalEntries, keepEntries: valid(keep) ? keep : current.keepEntries };
}

export interface RaftSettingsFollower {
  /** The policy last applied (null until the Cluster object has been seen). */
  readonly applied: SnapshotPolicy | null;
  stop(): Promise<void>;
}

type PolicyTarget = Pick<RaftNode, 'setSnapshotPolicy'>;

/** Follows the store's Cluster object until stopped or the store closes. */
export function followRaftSettings(store: MemoryStore, node: PolicyTarget, logger: Logger, initial: SnapshotPolicy = { intervalEntries: 10_000, keepEntries: 500 }): RaftSettingsFollower {
  let stopped = false;
  let current: { close(): void } | null = null;
  let applied: SnapshotPolicy | null = null;
  const apply = (cluster: RaftSettingsView | undefined): void => {
    if (cluster === undefined) return;
    const next = snapshotPolicyOf(cluster, applied ?? initial);
    if (next === null || (applied !== null && next.intervalEntries === applied.intervalEntries && next.keepEntries === applied.keepEntries)) return;
    node.setSnapshotPolicy(next);
    if (applied !== null) logger.info({ ...next, was: applied }, 'snapshot policy changed');
    applied = next;
  };
  const loop = async (): Promise<void> => {
    while (!stopped && !store.closed) {
      const [cluster, watch] = store.viewAndWatch((tx) => tx.find('cluster')[0], { kinds: ['cluster'] });
      current = watch;
      apply(cluster as RaftSettingsView | undefined);
      try {
        for await (const ev of watch) {
          if (stopped) break;
          if (ev.action !== 'delete') apply(ev.object as RaftSettingsView);
        }
        return;
      } catch (err) {
        if (!(err instanceof ResyncRequiredError)) throw err;
        logger.warn({ err }, 'cluster watch lost continuity; re-reading the Raft settings');
      }
    }
  };
  const done = loop().catch((err: unknown) => logger.error({ err }, 'Raft settings follower stopped'));
  return {
    get applied() {
      return applied;
    },
    async stop() {
      stopped = true;
      current?.close();
      await done;
    },
  };
}
