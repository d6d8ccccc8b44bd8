// What the control API needs from other parts, as small interfaces the manager runtime fills in.
// Defaults exist for the ones that need nothing but the store's own data.
import { ClusterCA, type ClusterCAData } from '../../ca/cluster-ca.js';
import { MANAGER_ROLE, WORKER_ROLE } from '../../ca/roles.js';
import { tlsInfoOfCA } from '../certificates.js';
import type { Cluster, Tx, UpdateResult } from '../store/index.js';

/**
 * The Cluster object as the manager keeps it: Docker's shape plus fields that never leave the
 * managers (stripped from every read by `redactCluster`):
 *   ShoalCA            the CA's data with the root key (manager/membership/cluster-state.ts)
 *   RemovedNodes       nodes whose certificates are refused from now on
 *   ManagerUnlockKey   the autolock unlock key (SWMKEY-1-…), only `getUnlockKey` returns it;
 *                      every manager's key manager derives its KEK from it (keymanager/cluster-sync.ts)
 */
export type StoredCluster = Cluster;

export interface CAChange {
  readonly rotateWorkerToken: boolean;
  readonly rotateManagerToken: boolean;
  /** The new node certificate lifetime, when `swarm update --cert-expiry` changed it. */
  readonly certExpiryMs?: number;
  /** `swarm ca --rotate`: the spec's new CAConfig.ForceRotate; a root rotation starts unless one runs. */
  readonly forceRotate?: number;
}

export interface CAChangeResult {
  readonly caData: ClusterCAData;
  readonly joinTokens: { readonly Worker: string; readonly Manager: string };
  /** Cluster fields that change with the CA (a root rotation: RootRotationInProgress, TLSInfo). */
  readonly cluster?: Pick<Cluster, 'RootRotationInProgress' | 'TLSInfo'>;
}

/** Join-token rotation and certificate expiry: the CA's business, applied to the data the Cluster object holds. */
export interface ClusterCASeam {
  apply(caData: ClusterCAData, change: CAChange): Promise<CAChangeResult>;
}

/** The default: rebuild a ClusterCA from the stored data, change it, export it again (nothing else is touched). */
export const clusterCASeam: ClusterCASeam = {
  async apply(caData, change) {
    const ca = await ClusterCA.restore(caData);
    if (change.certExpiryMs !== undefined) await ca.setCertExpiry({ expiryMs: change.certExpiryMs, backdateMs: ca.expiryPolicy.backdateMs });
    if (change.rotateWorkerToken) ca.rotateJoinToken(WORKER_ROLE);
    if (change.rotateManagerToken) ca.rotateJoinToken(MANAGER_ROLE);
    // A rotation already running finishes first; the leader starts the next one then (manager/certificates.ts).
    const startRotation = change.forceRotate !== undefined && ca.rootCA.rotation === null;
    if (startRotation) await ca.startRootRotation(Date.now(), change.forceRotate);
    const tokens = ca.joinTokens;
    const exported = await ca.export();
    const cluster = startRotation ? { cluster: { RootRotationInProgress: true, TLSInfo: tlsInfoOfCA(exported) } } : {};
    return { caData: exported, joinTokens: { Worker: tokens.worker, Manager: tokens.manager }, ...cluster };
  },
};

/** Raft membership questions only the runtime can answer. */
export interface MembershipSeam {
  /** Why demoting this manager must be refused now (quorum), or null to allow it. */
  refuseDemotion(nodeId: string): string | null;
}

export type StoreWrite = <T>(fn: (tx: Tx) => T) => Promise<UpdateResult<T>>;
