// The node side of issuance: a fresh P-256 key and a PKCS#10 CSR over it. The private key stays on
// the node (written 0600 by identity-store.ts); only the CSR travels.
import { generateKeyPair as generateKeyPairCb, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

import { context, oid, seq, smallInteger, tlv, utf8, bitString, TAG } from './der.js';

const generateKeyPair = promisify(generateKeyPairCb);
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

export interface NodeKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Runs on libuv's thread pool, so many joiners can generate keys at once. */
export async function generateNodeKey(): Promise<NodeKey> {
  return generateKeyPair('ec', { namedCurve: 'P-256' });
}

export function privateKeyPem(key: NodeKey): string {
  return key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** A CSR with subject CN=<commonName> (informational: the CA sets the real subject). */
export function createNodeCsr(key: NodeKey, commonName = 'shoal-node'): Buffer {
  const spki = key.publicKey.export({ format: 'der', type: 'spki' });
  const subject = seq(tlv(TAG.SET, seq(oid('2.5.4.3'), utf8(commonName))));
  const info = seq(smallInteger(0), subject, spki, context(0, true));
  const signature = sign('sha256', info, { key: key.privateKey, dsaEncoding: 'der' });
  const der = seq(info, ECDSA_SHA256, bitString(signature));
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength);
}
