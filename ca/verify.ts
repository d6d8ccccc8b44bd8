// Certificate parsing and chain checks with node:crypto's native X509Certificate.
// Used by the joiner (is this root the one in my token?), by tests, and by the rotation progress
// count (which root signed this node's certificate?). TLS itself verifies with OpenSSL.
import { X509Certificate } from 'node:crypto';

import { CAError } from './errors.js';
import { isNodeRole, type NodeRole } from './roles.js';

/** Longest leaf → root path we follow: leaf, cross-signed root, root. */
const MAX_CHAIN_DEPTH = 4;

export function splitPemBundle(pem: string | Uint8Array): string[] {
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8');
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export function parseCertificates(pem: string | Uint8Array): X509Certificate[] {
  return splitPemBundle(pem).map((block) => new X509Certificate(block));
}

/** The identity a node certificate proves. */
export interface NodeCertificateInfo {
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly clusterId: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly serialNumber: string;
}

function subjectField(subject: string, key: string): string | null {
  for (const line of subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && line.slice(0, eq) === key) return line.slice(eq + 1);
  }
  return null;
}

/** Reads CN/OU/O and validity of a node certificate (the first certificate of `chainPem`). */
export function readNodeCertificate(chainPem: string | Uint8Array): NodeCertificateInfo {
  const leaf = parseCertificates(chainPem)[0];
  if (leaf === undefined) throw new CAError('INVALID_CERTIFICATE', 'no certificate in the PEM data');
  const nodeId = subjectField(leaf.subject, 'CN');
  const role = subjectField(leaf.subject, 'OU');
  const clusterId = subjectField(leaf.subject, 'O');
  if (nodeId === null || clusterId === null || !isNodeRole(role)) {
    throw new CAError('INVALID_CERTIFICATE', `not a node certificate: subject ${leaf.subject.replace(/\n/g, ', ')}`);
  }
  return {
    nodeId,
    role,
    clusterId,
    notBeforeMs: Date.parse(leaf.validFrom),
    notAfterMs: Date.parse(leaf.validTo),
    serialNumber: leaf.serialNumber,
  };
}

/** Was the leaf of `chainPem` signed by `signer`'s key? (Which root a node's certificate is under.) */
export function isSignedBy(chainPem: string | Uint8Array, signer: X509Certificate): boolean {
  const leaf = parseCertificates(chainPem)[0];
  return leaf !== undefined && leaf.checkIssued(signer) && leaf.verify(signer.publicKey);
}

function within(cert: X509Certificate, nowMs: number): boolean {
  return Date.parse(cert.validFrom) <= nowMs && nowMs <= Date.parse(cert.validTo);
}

export type ChainCheck =
  | { readonly ok: true; readonly root: X509Certificate; readonly path: readonly X509Certificate[] }
  | { readonly ok: false; readonly reason: string };

/**
 * Does `chain[0]` lead to one of `trusted` through the other certificates of `chain`, every signature
 * valid and every certificate within its validity at `nowMs`? Intermediates must be CA certificates.
 */
export function checkChain(chain: readonly X509Certificate[], trusted: readonly X509Certificate[], nowMs: number): ChainCheck {
  const leaf = chain[0];
  if (leaf === undefined) return { ok: false, reason: 'empty certificate chain' };
  const path: X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    if (!within(current, nowMs)) return { ok: false, reason: `certificate ${current.subject.replace(/\n/g, ', ')} is outside its validity period` };
    const root = trusted.find((r) => current.checkIssued(r) && current.verify(r.publicKey) && within(r, nowMs));
    if (root !== undefined) return { ok: true, root, path };
    const next = chain.find((c) => c !== current && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
    if (next === undefined) return { ok: false, reason: 'no trusted root signed this chain' };
    path.push(next);
    current = next;
  }
  return { ok: false, reason: `chain longer than ${MAX_CHAIN_DEPTH}` };
}
