// Docker's TLSInfo: which root a node trusts and which key issued its certificate.
//
//   Node.Description.TLSInfo   the node reports it (its agent's session description; the leader's
//                              CA records it on every renewal it serves)
//   Cluster.TLSInfo            the root certificates should be under now (the next root while a
//                              rotation runs)
// `TrustRoot` is PEM; `CertIssuerSubject` is the base64 of the issuer's subject Name (DER) and
// `CertIssuerPublicKey` the base64 of its SubjectPublicKeyInfo (DER), as dockerd's JSON has them.
// A node counts as converted when its CertIssuerPublicKey and CertIssuerSubject equal the cluster's.
import { X509Certificate } from 'node:crypto';

import { readChildren, readElement } from './der.js';
import { CAError } from './errors.js';
import { checkChain, parseCertificates } from './verify.js';

export interface TLSInfo {
  readonly TrustRoot: string;
  readonly CertIssuerSubject: string;
  readonly CertIssuerPublicKey: string;
}

/** The subject Name of a certificate, DER (Certificate → TBSCertificate → subject). */
export function subjectDer(cert: X509Certificate): Uint8Array {
  const certificate = readElement(new Uint8Array(cert.raw));
  const [tbs] = readChildren(certificate.content);
  if (tbs === undefined) throw new CAError('INVALID_CERTIFICATE', 'certificate without a TBSCertificate');
  const fields = readChildren(tbs.content);
  // [0] version is optional; then serial, signature algorithm, issuer, validity, subject.
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[offset + 4];
  if (subject === undefined) throw new CAError('INVALID_CERTIFICATE', 'certificate without a subject');
  return subject.raw;
}

export function spkiDer(cert: X509Certificate): Buffer {
  return cert.publicKey.export({ format: 'der', type: 'spki' });
}

/** The issuer fields for a certificate authority certificate (a root): what certificates under it report. */
export function issuerInfo(issuer: X509Certificate): { readonly CertIssuerSubject: string; readonly CertIssuerPublicKey: string } {
  return { CertIssuerSubject: Buffer.from(subjectDer(issuer)).toString('base64'), CertIssuerPublicKey: spkiDer(issuer).toString('base64') };
}

/**
 * A node's TLSInfo from its chain and trust bundle: the issuer is the certificate (an intermediate in
 * the chain, e.g. the cross-signed next root, or a trusted root) whose key signed the leaf.
 */
export function nodeTlsInfo(certChainPem: string, trustBundlePem: string): TLSInfo {
  const chain = parseCertificates(certChainPem);
  const leaf = chain[0];
  if (leaf === undefined) throw new CAError('INVALID_CERTIFICATE', 'no certificate in the node chain');
  const candidates = [...chain.slice(1), ...parseCertificates(trustBundlePem)];
  const issuer = candidates.find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey));
  if (issuer === undefined) throw new CAError('INVALID_CERTIFICATE', 'no certificate in the chain or trust bundle issued the node certificate');
  return { TrustRoot: canonicalPem(trustBundlePem), ...issuerInfo(issuer) };
}

/**
 * One PEM form for TrustRoot everywhere (node and cluster), so the docker CLI's byte-for-byte
 * comparison of a node's TrustRoot with the cluster's holds once they trust the same roots.
 */
export function canonicalPem(pem: string): string {
  return parseCertificates(pem)
    .map((c) => c.toString().trim() + '\n')
    .join('');
}

/** The root new certificates are issued under: the last of the cluster's trust bundle ([current] or [current, next]). */
export function desiredIssuer(trustBundlePem: string): X509Certificate | null {
  const roots = parseCertificates(trustBundlePem);
  return roots[roots.length - 1] ?? null;
}

/** Is the leaf of `certChainPem` signed by `issuer`'s key? */
export function issuedBy(certChainPem: string, issuer: X509Certificate): boolean {
  const leaf = parseCertificates(certChainPem)[0];
  return leaf !== undefined && leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey);
}

/** Does the node chain verify against `trustBundlePem` alone (so the node can trust only that)? */
export function chainVerifies(certChainPem: string, trustBundlePem: string, nowMs: number): boolean {
  return checkChain(parseCertificates(certChainPem), parseCertificates(trustBundlePem), nowMs).ok;
}

/** The same set of certificates, whatever the order and PEM formatting. */
export function sameCertificates(aPem: string, bPem: string): boolean {
  const fp = (pem: string): string => parseCertificates(pem).map((c) => c.fingerprint256).sort().join(',');
  return fp(aPem) === fp(bPem);
}
