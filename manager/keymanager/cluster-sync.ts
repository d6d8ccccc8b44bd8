// Every manager follows the Cluster object's autolock setting. The control API writes
// `Spec.EncryptionConfig.AutoLockManagers` and `ManagerUnlockKey` (one key for the swarm, as
// swarmkit keeps it in the cluster's UnlockKeys); each manager's key manager re-wraps its own
// DEK and TLS key when they change, and rotates its DEK when autolock flips.
import type { Logger } from 'pino';

import { ResyncRequiredError, type MemoryStore } from '../store/index.js';
import type { ApplyDek, KeyManager } from './key-manager.js';

export interface ClusterKeyView {
  readonly Spec: { readonly EncryptionConfig?: { readonly AutoLockManagers?: boolean } };
  readonly ManagerUnlockKey?: string;
}

/** The unlock key the cluster wants this manager under: the key with autolock, null without. */
export function desiredUnlockKey(cluster: ClusterKeyView): string | null | undefined {
  if (cluster.Spec.EncryptionConfig?.AutoLockManagers !== true) return null;
  const key = cluster.ManagerUnlockKey;
  return key === undefined || key === '' ? undefined : key; // undefined: autolock on but no key yet, wait
}

/** Applies the cluster's setting to this manager's keys; true when something changed. */
export async function syncAutolock(km: KeyManager, cluster: ClusterKeyView, apply: ApplyDek): Promise<boolean> {
  const wanted = desiredUnlockKey(cluster);
  if (wanted === undefined || km.locked) return false;
  if (wanted === km.unlockKey && (wanted === null) === !km.autolock) return false;
  await km.setUnlockKey(wanted, apply);
  return true;
}

export interface ClusterKeySync {
  stop(): void;
  /** Resolves when the loop has ended (after stop, or when the store closed). */
  readonly done: Promise<void>;
}

/**
 * Follows the store's Cluster object for as long as it runs. Changes are applied one at a time in
 * order; a failure is logged and retried at the next change. A watch that lost continuity re-reads.
 */
export function watchClusterKeys(store: MemoryStore, km: KeyManager, apply: ApplyDek, logger: Logger): ClusterKeySync {
  let stopped = false;
  let current: { close(): void } | null = null;
  const syncNow = async (cluster: ClusterKeyView | undefined): Promise<void> => {
    if (cluster === undefined) return;
    try {
      await syncAutolock(km, cluster, apply);
    } catch (err) {
      logger.error({ err }, "could not apply the cluster's autolock setting to this manager's keys; will retry at the next cluster change");
    }
  };
  const loop = async (): Promise<void> => {
    while (!stopped && !store.closed) {
      const [cluster, watch] = store.viewAndWatch((tx) => tx.find('cluster')[0], { kinds: ['cluster'] });
      current = watch;
      await syncNow(cluster);
      try {
        for await (const ev of watch) {
          if (stopped) break;
          if (ev.action !== 'delete') await syncNow(ev.object as ClusterKeyView);
        }
        return; // the watch ended: store closed or stopped
      } catch (err) {
        if (!(err instanceof ResyncRequiredError)) throw err;
        logger.warn({ err }, 'cluster watch lost continuity; re-reading the cluster');
      }
    }
  };
  const done = loop().catch((err: unknown) => logger.error({ err }, 'cluster key sync stopped'));
  return {
    stop() {
      stopped = true;
      current?.close();
    },
    done,
  };
}
