// Certificates at runtime on a manager: its own certificate (renewal, role change, root rotation)
// and, on the leader, the cluster-wide root CA rotation (`swarm ca --rotate`).
//
// Every manager, every `pollMs`, reads the store:
//   own Node.Spec.Role           → the role its certificate must carry (promote/demote renews at once)
//   Cluster.ShoalCA roots        → the trust bundle; a certificate not under the newest root is renewed
// and renews at the leader (RenewNodeCertificate over mutual TLS, new key each time). A new identity
// is saved (key 0600) and installed: the cluster port's server credentials and the Raft transport
// use it for new connections (Manager.applyIdentity).
//
// The leader also records each certificate it renews as the node's Description.TLSInfo (what dockerd
// shows in `node inspect` and what `swarm ca --rotate` counts), and drives the rotation:
//
//   Spec.CAConfig.ForceRotate > ShoalCA.forceRotate   start: R2 and X = R2 cross-signed by R1;
//                                                     ShoalCA.rotation, RootRotationInProgress,
//                                                     Cluster.TLSInfo = R2 (the root to convert to)
//   every node's TLSInfo issuer = R2                  finish: R2 the only root, new join tokens
//                                                     (the digest changed), RootRotationInProgress off
//
// Nodes learn it from the store (managers) or their dispatcher session (workers, root_ca_pem), renew
// under R2 (chain leaf + X, which peers still trusting only R1 accept) and trust [R1, R2], then [R2].
import type { Logger } from 'pino';

import type { ClusterCA } from '../ca/cluster-ca.js';
import { ClusterCA as ClusterCAClass } from '../ca/cluster-ca.js';
import { saveIdentity, type NodeIdentity } from '../ca/identity.js';
import { renewNodeCertificate } from '../ca/join.js';
import { NodeCertificates, type IdentityChange } from '../ca/node-certificates.js';
import type { Clock } from '../ca/renewal.js';
import { MANAGER_ROLE, WORKER_ROLE } from '../ca/roles.js';
import { canonicalPem, desiredIssuer, issuerInfo, nodeTlsInfo, type TLSInfo } from '../ca/tls-info.js';
import type { CAServer } from '../proto/gen/shoal/ca.js';
import { ManagerError } from './errors.js';
import { clusterOf, type ManagedCluster } from './membership/cluster-state.js';
import type { Cluster, MemoryStore, Node, UpdateResult, Tx } from './store/index.js';

export const DEFAULT_CERTIFICATE_POLL_MS = 500;
/** While a rotation runs, a follower whose recorded TLSInfo is stale renews (to be recorded) at most this often. */
export const DEFAULT_REPORT_EVERY_MS = 5_000;

export interface ManagerCertificatesOptions {
  /** How often the store is read for this node's role, the cluster's roots and the rotation (default 500 ms). */
  readonly pollMs?: number;
  readonly reportEveryMs?: number;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly callTimeoutMs?: number;
  /** How a renewed identity is written (default ca/identity.ts saveIdentity: key 0600). */
  readonly save?: (certificatesDir: string, identity: NodeIdentity) => Promise<void>;
}

/** What this module needs of the Manager (manager.ts implements it). */
export interface CertificateHost {
  readonly identity: NodeIdentity;
  readonly nodeId: string;
  readonly addr: string;
  readonly isLeader: boolean;
  readonly ca: ClusterCA | null;
  readonly logger: Logger;
  /** The store, or null once closed. */
  storeOrNull(): MemoryStore | null;
  /** The leader's address (this manager's own when it leads), or null when no leader is known. */
  leaderAddr(): string | null;
  update<T>(fn: (tx: Tx) => T): Promise<UpdateResult<T>>;
  /** Raft's view: this manager is a member while its ID is among voters or learners. */
  status(): { readonly voters: readonly string[]; readonly learners: readonly string[] };
  applyIdentity(identity: NodeIdentity, change: IdentityChange): void;
}

/** Rotation progress as the leader counts it (nodes under the next root / nodes in the store). */
export interface RotationProgress {
  readonly inProgress: boolean;
  readonly total: number;
  readonly converted: number;
}

function pemBlock(pem: string): string {
  return pem.trim() + '\n';
}

/** The cluster's trust bundle from its CA data: [root] or, during a rotation, [root, next]. */
export function trustBundleOfCluster(cluster: Cluster): string | null {
  const data = cluster.ShoalCA;
  if (data === undefined) return null;
  const rotation = data.rootCA.rotation;
  return pemBlock(data.rootCA.rootCertPem) + (rotation === null ? '' : pemBlock(rotation.nextCertPem));
}

/** The TLSInfo the Cluster object should show: the root certificates must be under now (the next root during a rotation). */
export function clusterTlsInfo(cluster: Cluster): TLSInfo | null {
  const bundle = trustBundleOfCluster(cluster);
  if (bundle === null) return null;
  // Asked on every leader tick: parse the roots only when the bundle changed.
  if (lastClusterTlsInfo?.bundle === bundle) return lastClusterTlsInfo.info;
  const issuer = desiredIssuer(bundle);
  const info = issuer === null ? null : { TrustRoot: canonicalPem(issuer.toString()), ...issuerInfo(issuer) };
  lastClusterTlsInfo = { bundle, info };
  return info;
}
let lastClusterTlsInfo: { readonly bundle: string; readonly info: TLSInfo | null } | null = null;

/** Same PEM content, whatever the line breaks and trailing newlines. */
function samePem(a: string | undefined, b: string | undefined): boolean {
  return (a ?? '').replace(/\s+/g, '') === (b ?? '').replace(/\s+/g, '');
}

function sameIssuer(a: { readonly CertIssuerPublicKey?: string; readonly CertIssuerSubject?: string } | undefined, b: TLSInfo): boolean {
  return a?.CertIssuerPublicKey === b.CertIssuerPublicKey && a.CertIssuerSubject === b.CertIssuerSubject;
}

function removedIds(cluster: Cluster): Set<string> {
  return new Set((cluster.RemovedNodes ?? []).map((r) => r.ID));
}

/** Nodes under the cluster's current issuer (its TLSInfo) among the nodes in the store. */
export function rotationProgressOf(cluster: Cluster, nodes: readonly Node[]): RotationProgress {
  const target = clusterTlsInfo(cluster);
  const removed = removedIds(cluster);
  const counted = nodes.filter((n) => !removed.has(n.ID));
  const converted = target === null ? 0 : counted.filter((n) => sameIssuer(n.Description?.TLSInfo, target)).length;
  return { inProgress: cluster.ShoalCA?.rootCA.rotation != null, total: counted.length, converted };
}

export class ManagerCertificates {
  readonly node: NodeCertificates;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = false;
  private lastReportMs = 0;
  private ownInfo: { readonly identity: NodeIdentity; readonly info: TLSInfo } | null = null;
  private lastProgress = '';
  private wasMember = false;

  constructor(
    private readonly host: CertificateHost,
    certificatesDir: string,
    private readonly o: ManagerCertificatesOptions = {},
  ) {
    const logger = host.logger.child({ component: 'certificates' });
    this.node = new NodeCertificates({
      identity: host.identity,
      certificatesDir,
      renew: (current) => this.renewAtLeader(current),
      logger,
      ...(o.save !== undefined ? { save: o.save } : {}),
      ...(o.clock !== undefined ? { clock: o.clock } : {}),
      ...(o.random !== undefined ? { random: o.random } : {}),
      ...(o.retryDelayMs !== undefined ? { retryDelayMs: o.retryDelayMs } : {}),
      ...(o.maxRetryDelayMs !== undefined ? { maxRetryDelayMs: o.maxRetryDelayMs } : {}),
    });
    this.node.onChange((identity, change) => host.applyIdentity(identity, change));
  }

  start(): void {
    this.stopped = false;
    this.node.start();
    this.timer = setInterval(() => void this.tick(), this.o.pollMs ?? DEFAULT_CERTIFICATE_POLL_MS);
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.node.stop();
  }

  /** Rotation progress from this manager's store (every manager can answer; the leader acts on it). */
  progress(): RotationProgress | null {
    const store = this.host.storeOrNull();
    const cluster = store === null ? undefined : clusterOf(store);
    return store === null || cluster === undefined ? null : rotationProgressOf(cluster, store.find('node'));
  }

  /**
   * Wraps the CA's RenewNodeCertificate handler: on the leader, the renewed certificate's issuer and
   * trust root are written into the node's Description.TLSInfo before the answer goes out.
   */
  recordingRenewal(handler: CAServer['renewNodeCertificate']): CAServer['renewNodeCertificate'] {
    return (call, callback) =>
      handler(call, (err, res) => {
        if (err !== null || res === undefined || res === null) {
          callback(err, res);
          return;
        }
        this.recordTlsInfo(res.nodeId, res.certificateChainPem.toString(), res.trustBundlePem.toString())
          .catch((e: unknown) => this.host.logger.warn({ err: e, nodeId: res.nodeId }, "could not record the node's TLS info"))
          .finally(() => callback(null, res));
      });
  }

  private async renewAtLeader(current: NodeIdentity): Promise<NodeIdentity> {
    const address = this.host.leaderAddr();
    if (address === null) throw new ManagerError('NO_LEADER', 'certificate renewal needs the leader and no leader is known; retrying');
    return renewNodeCertificate({ address, identity: current, ...(this.o.callTimeoutMs !== undefined ? { callTimeoutMs: this.o.callTimeoutMs } : {}) });
  }

  private myTlsInfo(): TLSInfo {
    const identity = this.node.identity;
    if (this.ownInfo?.identity !== identity) this.ownInfo = { identity, info: nodeTlsInfo(identity.certChainPem, identity.trustBundlePem) };
    return this.ownInfo.info;
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const store = this.host.storeOrNull();
      if (store === null) return;
      const cluster = clusterOf(store);
      const self = store.get('node', this.host.nodeId);
      const status = this.host.status();
      const member = status.voters.includes(this.host.nodeId) || status.learners.includes(this.host.nodeId);
      this.wasMember ||= member;
      if (this.wasMember && !member) {
        // Demoted (or removed): out of Raft, this store no longer hears of the Node's role; a worker is what remains.
        this.node.setDesired({ role: WORKER_ROLE });
      } else if (self !== undefined) {
        this.node.setDesired({ role: self.Spec.Role === 'manager' ? MANAGER_ROLE : WORKER_ROLE });
      }
      const bundle = cluster === undefined ? null : trustBundleOfCluster(cluster);
      if (bundle !== null) this.node.setDesired({ trustBundlePem: bundle });
      if (cluster === undefined) return;
      if (this.host.isLeader) {
        await this.lead(store, cluster, self);
      } else if (self !== undefined && this.node.underDesiredRoot()) {
        this.reportIfStale(self);
      }
    } catch (err) {
      this.host.logger.warn({ err }, 'certificate loop');
    } finally {
      this.busy = false;
    }
  }

  /**
   * A follower's TLSInfo in the store is stale (it joined, renewed elsewhere, or changed its trust
   * bundle after a rotation): renew at the leader, which records it, so `swarm ca` can count it.
   */
  private reportIfStale(self: Node): void {
    const mine = this.myTlsInfo();
    const recorded = self.Description?.TLSInfo;
    if (sameIssuer(recorded, mine) && samePem(recorded?.TrustRoot, mine.TrustRoot)) return;
    const now = Date.now();
    if (now - this.lastReportMs < (this.o.reportEveryMs ?? DEFAULT_REPORT_EVERY_MS)) return;
    this.lastReportMs = now;
    this.node.renewNow('requested');
  }

  private async lead(store: MemoryStore, cluster: ManagedCluster, self: Node | undefined): Promise<void> {
    if (self !== undefined) {
      const mine = this.myTlsInfo();
      const recorded = self.Description?.TLSInfo;
      if (!sameIssuer(recorded, mine) || !samePem(recorded?.TrustRoot, mine.TrustRoot)) await this.recordTlsInfoInfo(self.ID, mine);
    }
    const data = cluster.ShoalCA;
    if (data === undefined) return;
    const forceRotate = cluster.Spec.CAConfig?.ForceRotate ?? 0;
    if (data.rootCA.rotation === null && forceRotate > (data.forceRotate ?? 0)) {
      await this.startRotation(cluster, forceRotate);
      return;
    }
    if (data.rootCA.rotation !== null) {
      const progress = rotationProgressOf(cluster, store.find('node'));
      const line = `${progress.converted}/${progress.total}`;
      if (line !== this.lastProgress) {
        this.lastProgress = line;
        this.host.logger.info({ converted: progress.converted, total: progress.total }, 'root CA rotation progress');
      }
      if (progress.total > 0 && progress.converted === progress.total) await this.finishRotation(cluster);
      return;
    }
    const target = clusterTlsInfo(cluster);
    if (target !== null && (!sameIssuer(cluster.TLSInfo, target) || !samePem(cluster.TLSInfo?.TrustRoot, target.TrustRoot) || cluster.RootRotationInProgress === true)) {
      await this.writeCluster(cluster, () => ({ TLSInfo: target, RootRotationInProgress: false }));
    }
  }

  private async startRotation(cluster: ManagedCluster, forceRotate: number): Promise<void> {
    const ca = await ClusterCAClass.restore(cluster.ShoalCA!);
    await ca.startRootRotation(Date.now(), forceRotate);
    const data = await ca.export();
    const written = await this.writeCluster(cluster, (c) => {
      const next: Cluster = { ...c, ShoalCA: data };
      return { ShoalCA: data, RootRotationInProgress: true, TLSInfo: clusterTlsInfo(next)! };
    });
    if (written) this.host.logger.info({ forceRotate }, 'root CA rotation started: new root cross-signed by the current one');
  }

  private async finishRotation(cluster: ManagedCluster): Promise<void> {
    const ca = await ClusterCAClass.restore(cluster.ShoalCA!);
    await ca.finishRootRotation();
    const data = await ca.export();
    const written = await this.writeCluster(cluster, (c) => {
      const next: Cluster = { ...c, ShoalCA: data };
      return { ShoalCA: data, JoinTokens: { Worker: data.joinTokens.worker, Manager: data.joinTokens.manager }, RootRotationInProgress: false, TLSInfo: clusterTlsInfo(next)! };
    });
    if (written) {
      this.lastProgress = '';
      this.host.logger.info({ rootDigest: ca.rootDigestHex }, 'root CA rotation finished: the old root is dropped and the join tokens changed');
    }
  }

  /** Writes fields of the Cluster object if it is still at the version read; false when it moved on (retried next tick). */
  private async writeCluster(read: ManagedCluster, fields: (c: ManagedCluster) => Partial<ManagedCluster>): Promise<boolean> {
    const { result } = await this.host.update((tx) => {
      const cur = tx.get('cluster', read.ID);
      if (cur === undefined || cur.Version.Index !== read.Version.Index) return false;
      tx.update('cluster', { ...cur, ...fields(cur) });
      return true;
    });
    return result;
  }

  private async recordTlsInfo(nodeId: string, chainPem: string, trustBundlePem: string): Promise<void> {
    if (!this.host.isLeader) return;
    await this.recordTlsInfoInfo(nodeId, nodeTlsInfo(chainPem, trustBundlePem));
  }

  private async recordTlsInfoInfo(nodeId: string, info: TLSInfo): Promise<void> {
    await this.host.update((tx) => {
      const node = tx.get('node', nodeId);
      if (node === undefined) return;
      const cur = node.Description?.TLSInfo;
      if (sameIssuer(cur, info) && samePem(cur?.TrustRoot, info.TrustRoot)) return;
      tx.update('node', { ...node, Description: { ...(node.Description ?? {}), TLSInfo: info } });
    });
  }
}

/**
 * How a renewed identity is written on a manager: through the key manager when the key source has
 * one (it encrypts the key under autolock: `KeyManager.storeTlsKey`), else plain with mode 0600.
 */
export function identitySaver(keySource: unknown): (certificatesDir: string, identity: NodeIdentity) => Promise<void> {
  return async (dir, identity) => {
    const km = (keySource as { readonly keyManager?: { storeTlsKey?: (pem: string) => Promise<void> } | null }).keyManager;
    const storeTlsKey = km?.storeTlsKey?.bind(km);
    await saveIdentity(dir, identity, storeTlsKey);
  };
}

/** The Cluster object's TLSInfo for a CA as stored (at swarm init; the leader keeps it current after). */
export function tlsInfoOfCA(data: NonNullable<Cluster['ShoalCA']>): TLSInfo | undefined {
  return clusterTlsInfo({ ShoalCA: data } as Cluster) ?? undefined;
}
