// Issues node certificates from CSRs under the current signing material of a RootCA.
// The CSR's key is the only thing taken from the request: CN/OU/O come from the CA's decision.
import { KeyObject } from 'node:crypto';

import { EC_KEY_ALGORITHM, x509 } from './crypto.js';
import type { CertExpiryPolicy } from './expiry.js';
import { buildNodeCertificate, checkCsrDer, derToPem, type NodeCertificateTemplate } from './node-cert-der.js';
import { signingMaterial, toPem, trustBundlePem, type RootCA } from './root-ca.js';
import type { NodeRole } from './roles.js';

export interface IssuedCertificate {
  /** Leaf then the chain (the cross-signed root during a rotation), PEM. */
  readonly chainPem: string;
  /** The roots the node should trust, PEM. */
  readonly trustBundlePem: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

export interface IssueRequest {
  readonly csrDer: Uint8Array;
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly nowMs: number;
}

/** Holds what every issuance under one RootCA shares (issuer name, AKI, chain PEM), computed once. */
export class NodeCertificateSigner {
  private constructor(
    private readonly template: NodeCertificateTemplate,
    private readonly chainSuffixPem: string,
    private readonly bundlePem: string,
    readonly clusterId: string,
    readonly expiryPolicy: CertExpiryPolicy,
  ) {}

  static async create(ca: RootCA, clusterId: string, policy: CertExpiryPolicy): Promise<NodeCertificateSigner> {
    const material = signingMaterial(ca);
    const issuerPublicKey = await material.issuer.publicKey.export(EC_KEY_ALGORITHM, ['verify']);
    const aki = await x509.AuthorityKeyIdentifierExtension.create(issuerPublicKey);
    const template: NodeCertificateTemplate = {
      issuerName: new Uint8Array(material.issuer.subjectName.toArrayBuffer()),
      authorityKeyIdentifier: new Uint8Array(aki.rawData),
      issuerKey: KeyObject.from(material.key),
    };
    const suffix = material.chain.length === 0 ? '' : toPem(material.chain);
    return new NodeCertificateSigner(template, suffix, trustBundlePem(ca), clusterId, policy);
  }

  /** Checks the CSR and signs. Throws CAError INVALID_CSR for a bad request. */
  issue(request: IssueRequest): IssuedCertificate {
    const spki = checkCsrDer(request.csrDer);
    const notBeforeMs = Math.floor((request.nowMs - this.expiryPolicy.backdateMs) / 1000) * 1000;
    const notAfterMs = Math.floor((request.nowMs + this.expiryPolicy.expiryMs) / 1000) * 1000;
    const der = buildNodeCertificate(this.template, {
      spki,
      nodeId: request.nodeId,
      role: request.role,
      clusterId: this.clusterId,
      notBeforeMs,
      notAfterMs,
    });
    return { chainPem: derToPem(der) + this.chainSuffixPem, trustBundlePem: this.bundlePem, notBeforeMs, notAfterMs };
  }
}
