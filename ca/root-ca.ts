// The cluster's root CA as data, and the pure steps of its life: create, start a rotation, finish it.
//
//   normal:    root R1 (signs)                       trust [R1]       chain appended to leaves: []
//   rotating:  root R1, next R2, X = R2 signed by R1  trust [R1, R2]   signer R2's key, chain [X]
//   finished:  root R2 (signs)                       trust [R2]       chain []
//
// While rotating, new certificates are signed by R2's key and carry X, so a peer that still trusts
// only R1 verifies them (leaf → X → R1) and a peer that already has the new bundle verifies them
// directly (leaf → R2); certificates still under R1 verify against the bundle too. The manager
// re-issues every node's certificate and calls finishRootRotation once all are under R2
// (rotationProgress counts them); the join tokens change then, with the digest.
import { X509Certificate } from 'node:crypto';

import {
  createSelfSignedRoot,
  crossSign,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  x509,
  type CryptoKey,
} from './crypto.js';
import { CAError } from './errors.js';
import { rootDigestBase36, rootDigestHex } from './join-token.js';
import { isSignedBy } from './verify.js';

export const ROOT_CA_VALIDITY_MS = 20 * 365 * 24 * 3600 * 1000;
/** Roots are backdated a little so that a peer whose clock is behind still accepts them. */
export const ROOT_CA_BACKDATE_MS = 3600 * 1000;

/** A root certificate with its key (only CA servers, i.e. managers, hold keys). */
export interface RootKeyPair {
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
}

export interface RootRotation {
  readonly next: RootKeyPair;
  /** `next.cert`'s subject and key, issued by the current root. */
  readonly crossSigned: x509.X509Certificate;
  readonly startedAtMs: number;
}

export interface RootCA {
  /** The current root: the one join-token digests are computed over and joiners check. */
  readonly root: RootKeyPair;
  readonly rotation: RootRotation | null;
}

export async function createRootCA(nowMs: number, validityMs: number = ROOT_CA_VALIDITY_MS): Promise<RootCA> {
  return { root: await newRootKeyPair(nowMs, validityMs), rotation: null };
}

async function newRootKeyPair(nowMs: number, validityMs: number): Promise<RootKeyPair> {
  const keys = await generateKeyPair();
  const cert = await createSelfSignedRoot({ keys, notBeforeMs: nowMs - ROOT_CA_BACKDATE_MS, notAfterMs: nowMs + validityMs });
  return { cert, key: keys.privateKey };
}

/** `swarm ca --rotate`: a new root, cross-signed by the current one. */
export async function startRootRotation(ca: RootCA, nowMs: number, validityMs: number = ROOT_CA_VALIDITY_MS): Promise<RootCA> {
  if (ca.rotation !== null) throw new CAError('ROTATION_IN_PROGRESS', 'a root CA rotation is already in progress; wait for it to finish');
  const next = await newRootKeyPair(nowMs, validityMs);
  const crossSigned = await crossSign(next.cert, ca.root.cert, ca.root.key);
  return { root: ca.root, rotation: { next, crossSigned, startedAtMs: nowMs } };
}

/** Every node is under the new root: drop the old one. Join tokens must be reissued for the new digest. */
export function finishRootRotation(ca: RootCA): RootCA {
  if (ca.rotation === null) throw new CAError('NO_ROTATION', 'no root CA rotation is in progress');
  return { root: ca.rotation.next, rotation: null };
}

/** The key that signs node certificates now, and what travels with them. */
export interface SigningMaterial {
  readonly issuer: x509.X509Certificate;
  readonly key: CryptoKey;
  /** Certificates appended after the leaf in every issued chain. */
  readonly chain: readonly x509.X509Certificate[];
}

export function signingMaterial(ca: RootCA): SigningMaterial {
  if (ca.rotation === null) return { issuer: ca.root.cert, key: ca.root.key, chain: [] };
  return { issuer: ca.rotation.next.cert, key: ca.rotation.next.key, chain: [ca.rotation.crossSigned] };
}

/** The roots a node should trust: [current] or, during a rotation, [current, next]. */
export function trustBundle(ca: RootCA): readonly x509.X509Certificate[] {
  return ca.rotation === null ? [ca.root.cert] : [ca.root.cert, ca.rotation.next.cert];
}

export function toPem(certs: readonly x509.X509Certificate[]): string {
  return certs.map((c) => c.toString('pem')).join('\n') + '\n';
}

export function trustBundlePem(ca: RootCA): string {
  return toPem(trustBundle(ca));
}

export function rootDer(ca: RootCA): Uint8Array {
  return new Uint8Array(ca.root.cert.rawData);
}

export function rootDigest(ca: RootCA): { readonly base36: string; readonly hex: string } {
  const der = rootDer(ca);
  return { base36: rootDigestBase36(der), hex: rootDigestHex(der) };
}

/** Rotation progress from the nodes' current certificates: how many are under the new root. */
export function rotationProgress(
  ca: RootCA,
  nodeCertificates: Iterable<string | Uint8Array>,
): { readonly total: number; readonly converted: number; readonly done: boolean } {
  if (ca.rotation === null) return { total: 0, converted: 0, done: true };
  const next = new X509Certificate(Buffer.from(ca.rotation.next.cert.rawData));
  let total = 0;
  let converted = 0;
  for (const pem of nodeCertificates) {
    total++;
    if (isSignedBy(pem, next)) converted++;
  }
  return { total, converted, done: converted === total };
}

/** The serialisable form of a RootCA (what the store replicates; keys are PKCS#8 PEM). */
export interface RootCAData {
  readonly rootCertPem: string;
  readonly rootKeyPem: string;
  readonly rotation: {
    readonly nextCertPem: string;
    readonly nextKeyPem: string;
    readonly crossSignedPem: string;
    readonly startedAtMs: number;
  } | null;
}

export async function exportRootCA(ca: RootCA): Promise<RootCAData> {
  return {
    rootCertPem: ca.root.cert.toString('pem'),
    rootKeyPem: await exportPrivateKeyPem(ca.root.key),
    rotation:
      ca.rotation === null
        ? null
        : {
            nextCertPem: ca.rotation.next.cert.toString('pem'),
            nextKeyPem: await exportPrivateKeyPem(ca.rotation.next.key),
            crossSignedPem: ca.rotation.crossSigned.toString('pem'),
            startedAtMs: ca.rotation.startedAtMs,
          },
  };
}

export async function importRootCA(data: RootCAData): Promise<RootCA> {
  const root = { cert: new x509.X509Certificate(data.rootCertPem), key: await importPrivateKeyPem(data.rootKeyPem) };
  if (data.rotation === null) return { root, rotation: null };
  return {
    root,
    rotation: {
      next: { cert: new x509.X509Certificate(data.rotation.nextCertPem), key: await importPrivateKeyPem(data.rotation.nextKeyPem) },
      crossSigned: new x509.X509Certificate(data.rotation.crossSignedPem),
      startedAtMs: data.rotation.startedAtMs,
    },
  };
}
