// The CA state of one cluster on a manager: cluster ID, root CA (with rotation), join tokens, the
// node certificate expiry, and the signer built from them. Every change returns through one of these
// methods, so the manager's store can later persist exactly these fields (ClusterCA.export) and
// rebuild the object on every manager (ClusterCA.restore).
import type { CertExpiryOptions, CertExpiryPolicy } from './expiry.js';
import { certExpiryPolicy } from './expiry.js';
import { newClusterId } from './ids.js';
import { generateNodeKey, createNodeCsr, privateKeyPem } from './csr.js';
import { identityFrom, type NodeIdentity } from './identity.js';
import { newJoinTokens, rotateJoinToken, type JoinTokens } from './join-token.js';
import {
  createRootCA,
  exportRootCA,
  finishRootRotation,
  importRootCA,
  rootDer,
  rootDigest,
  startRootRotation,
  toPem,
  trustBundlePem,
  type RootCA,
  type RootCAData,
} from './root-ca.js';
import type { NodeRole } from './roles.js';
import { NodeCertificateSigner, type IssuedCertificate } from './signer.js';

export interface ClusterCAData {
  readonly clusterId: string;
  readonly rootCA: RootCAData;
  readonly joinTokens: JoinTokens;
  readonly expiry: CertExpiryPolicy;
  /** The Cluster spec's `CAConfig.ForceRotate` the last root rotation was started for (absent: 0). */
  readonly forceRotate?: number;
}

/** What GetRootCACertificate answers. */
export interface RootCertificates {
  readonly rootPem: string;
  readonly crossSignedPem: string;
  readonly nextRootPem: string;
}

export class ClusterCA {
  private constructor(
    readonly clusterId: string,
    private root: RootCA,
    private tokens: JoinTokens,
    private signerNow: NodeCertificateSigner,
    private forceRotateSeen = 0,
  ) {}

  /** `swarm init`: a new cluster ID, root CA and join tokens. */
  static async create(options: { readonly nowMs: number; readonly clusterId?: string; readonly expiry?: CertExpiryOptions }): Promise<ClusterCA> {
    const clusterId = options.clusterId ?? newClusterId();
    const root = await createRootCA(options.nowMs);
    const signer = await NodeCertificateSigner.create(root, clusterId, certExpiryPolicy(options.expiry));
    return new ClusterCA(clusterId, root, newJoinTokens(rootDer(root)), signer);
  }

  static async restore(data: ClusterCAData): Promise<ClusterCA> {
    const root = await importRootCA(data.rootCA);
    const signer = await NodeCertificateSigner.create(root, data.clusterId, data.expiry);
    return new ClusterCA(data.clusterId, root, data.joinTokens, signer, data.forceRotate ?? 0);
  }

  async export(): Promise<ClusterCAData> {
    return {
      clusterId: this.clusterId,
      rootCA: await exportRootCA(this.root),
      joinTokens: this.tokens,
      expiry: this.signerNow.expiryPolicy,
      ...(this.forceRotateSeen !== 0 ? { forceRotate: this.forceRotateSeen } : {}),
    };
  }

  /** The `CAConfig.ForceRotate` value the last rotation answered (`swarm ca --rotate` increments the spec's). */
  get forceRotate(): number {
    return this.forceRotateSeen;
  }

  /** The roots nodes should trust now: [current] or, during a rotation, [current, next]. */
  trustBundlePem(): string {
    return trustBundlePem(this.root);
  }

  get rootCA(): RootCA {
    return this.root;
  }

  get joinTokens(): JoinTokens {
    return this.tokens;
  }

  get expiryPolicy(): CertExpiryPolicy {
    return this.signerNow.expiryPolicy;
  }

  get signer(): NodeCertificateSigner {
    return this.signerNow;
  }

  /** Hex SHA-256 of the current root's DER (what `swarm ca` shows). */
  get rootDigestHex(): string {
    return rootDigest(this.root).hex;
  }

  rootCertificates(): RootCertificates {
    const rotation = this.root.rotation;
    return {
      rootPem: toPem([this.root.root.cert]),
      crossSignedPem: rotation === null ? '' : toPem([rotation.crossSigned]),
      nextRootPem: rotation === null ? '' : toPem([rotation.next.cert]),
    };
  }

  /** `swarm join-token --rotate <role>`. */
  rotateJoinToken(role: NodeRole): JoinTokens {
    this.tokens = rotateJoinToken(this.tokens, role, rootDer(this.root));
    return this.tokens;
  }

  /** `swarm update --cert-expiry`: applies to certificates issued from now on. */
  async setCertExpiry(options: CertExpiryOptions): Promise<void> {
    this.signerNow = await NodeCertificateSigner.create(this.root, this.clusterId, certExpiryPolicy(options));
  }

  /** `swarm ca --rotate`: new root cross-signed by the current one; new certificates come from it. */
  async startRootRotation(nowMs: number, forceRotate?: number): Promise<void> {
    const next = await startRootRotation(this.root, nowMs);
    if (forceRotate !== undefined) this.forceRotateSeen = forceRotate;
    this.signerNow = await NodeCertificateSigner.create(next, this.clusterId, this.signerNow.expiryPolicy);
    this.root = next;
  }

  /** Every node converted: the new root becomes the only root; the join tokens change with the digest. */
  async finishRootRotation(): Promise<void> {
    const next = finishRootRotation(this.root);
    this.signerNow = await NodeCertificateSigner.create(next, this.clusterId, this.signerNow.expiryPolicy);
    this.root = next;
    this.tokens = newJoinTokens(rootDer(next));
  }

  issue(csrDer: Uint8Array, nodeId: string, role: NodeRole, nowMs: number): IssuedCertificate {
    return this.signerNow.issue({ csrDer, nodeId, role, nowMs });
  }

  /** A manager's own identity (at `swarm init`, and for tests): key generated here, never sent anywhere. */
  async issueLocalIdentity(nodeId: string, role: NodeRole, nowMs: number): Promise<NodeIdentity> {
    const key = await generateNodeKey();
    const issued = this.issue(createNodeCsr(key), nodeId, role, nowMs);
    return identityFrom(privateKeyPem(key), issued.chainPem, issued.trustBundlePem);
  }
}
