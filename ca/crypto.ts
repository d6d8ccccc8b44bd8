// ECDSA P-256 keys and X.509 certificates on Node's WebCrypto through @peculiar/x509.
// Roots, cross-signed roots and CSRs are built here; node certificates, the hot path, are assembled
// in node-cert-der.ts; parsing and chain checks use node:crypto's native X509Certificate (verify.ts).
import { webcrypto, randomBytes } from 'node:crypto';
// @peculiar/x509 resolves to its CommonJS build under Node ESM, which needs a Reflect metadata polyfill (tsyringe).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

import { CAError } from './errors.js';

x509.cryptoProvider.set(webcrypto);

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
export const ROOT_CA_COMMON_NAME = 'swarm-ca';

const subtle = webcrypto.subtle;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PKCS#8 PEM ("PRIVATE KEY"), the form Node's tls module and openssl read. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (der === undefined) throw new CAError('INVALID_CERTIFICATE', 'no PEM block in the private key file');
  return subtle.importKey('pkcs8', der, EC_KEY_ALGORITHM, true, ['sign']);
}

/** A positive 128-bit serial number in hex (the top bit cleared so DER keeps it positive). */
function newSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

/** Certificates carry whole seconds; truncating here keeps notBefore/notAfter exactly what we computed. */
export function toCertTime(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function caExtensions(publicKey: CryptoKey): Promise<x509.Extension[]> {
  return x509.SubjectKeyIdentifierExtension.create(publicKey).then((ski) => [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ski,
  ]);
}

export interface RootCertificateParams {
  readonly keys: CryptoKeyPair;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

/** A self-signed root: CN=swarm-ca, CA:true, keyCertSign. */
export async function createSelfSignedRoot(params: RootCertificateParams): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerialHex(),
    name: `CN=${ROOT_CA_COMMON_NAME}`,
    notBefore: toCertTime(params.notBeforeMs),
    notAfter: toCertTime(params.notAfterMs),
    keys: params.keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: await caExtensions(params.keys.publicKey),
  });
}

/**
 * The new root re-issued by the old root's key: same subject and public key as `newRoot`, issuer
 * the old root. A verifier that trusts only the old root accepts certificates signed by the new key
 * when this certificate travels in the chain.
 */
export async function crossSign(
  newRoot: x509.X509Certificate,
  oldRoot: x509.X509Certificate,
  oldKey: CryptoKey,
): Promise<x509.X509Certificate> {
  const publicKey = await newRoot.publicKey.export(EC_KEY_ALGORITHM, ['verify']);
  return x509.X509CertificateGenerator.create({
    serialNumber: newSerialHex(),
    subject: newRoot.subjectName,
    issuer: oldRoot.subjectName,
    notBefore: newRoot.notBefore,
    // Never outlive the vouching root.
    notAfter: new Date(Math.min(newRoot.notAfter.getTime(), oldRoot.notAfter.getTime())),
    publicKey,
    signingKey: oldKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      ...(await caExtensions(publicKey)),
      await x509.AuthorityKeyIdentifierExtension.create(await oldRoot.publicKey.export(EC_KEY_ALGORITHM, ['verify'])),
    ],
  });
}

/** A PKCS#10 request over `keys`. The subject is informational only: the CA sets CN/OU/O itself. */
export async function createCsr(keys: CryptoKeyPair): Promise<Uint8Array> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=shoal-node',
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
  });
  return new Uint8Array(csr.rawData);
}

export { x509 };
