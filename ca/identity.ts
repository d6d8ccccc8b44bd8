// A node's TLS identity (key, certificate chain, trusted roots) in memory and on disk.
// Files, as swarm names them, in <stateDir>/certificates/:
//   swarm-node.key      PKCS#8 PEM, mode 0600 (never leaves the node)
//   swarm-node.crt      leaf + chain PEM
//   swarm-root-ca.crt   trusted roots PEM
// Writes go to a temp file then rename, so a crash leaves the old or the new file, never half of one.
import { open, readFile, rename, mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';

import { CAError } from './errors.js';
import type { NodeRole } from './roles.js';
import { readNodeCertificate } from './verify.js';

export interface NodeIdentity {
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly clusterId: string;
  readonly keyPem: string;
  readonly certChainPem: string;
  readonly trustBundlePem: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

export const KEY_FILE = 'swarm-node.key';
export const CERT_FILE = 'swarm-node.crt';
export const ROOT_FILE = 'swarm-root-ca.crt';
export const KEY_FILE_MODE = 0o600;

export function identityFrom(keyPem: string, certChainPem: string, trustBundlePem: string): NodeIdentity {
  const info = readNodeCertificate(certChainPem);
  return {
    nodeId: info.nodeId,
    role: info.role,
    clusterId: info.clusterId,
    keyPem,
    certChainPem,
    trustBundlePem,
    notBeforeMs: info.notBeforeMs,
    notAfterMs: info.notAfterMs,
  };
}

async function writeAtomically(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w', mode);
  try {
    await handle.writeFile(data);
    // The mode given to open() is filtered by the umask; set it exactly.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/**
 * Writes the three files. `writeKey` replaces the plain key write (the key manager encrypts the key
 * under autolock); it must write KEY_FILE atomically with mode 0600.
 */
export async function saveIdentity(certificatesDir: string, identity: NodeIdentity, writeKey?: (keyPem: string) => Promise<void>): Promise<void> {
  await mkdir(certificatesDir, { recursive: true, mode: 0o700 });
  await chmod(certificatesDir, 0o700);
  // Key first: a crash between files leaves a key without its certificate, which load refuses, rather
  // than a new certificate next to an old key.
  if (writeKey !== undefined) await writeKey(identity.keyPem);
  else await writeAtomically(join(certificatesDir, KEY_FILE), identity.keyPem, KEY_FILE_MODE);
  await writeAtomically(join(certificatesDir, CERT_FILE), identity.certChainPem, 0o644);
  await writeAtomically(join(certificatesDir, ROOT_FILE), identity.trustBundlePem, 0o644);
}

export async function loadIdentity(certificatesDir: string): Promise<NodeIdentity> {
  let files: string[];
  try {
    files = await Promise.all([KEY_FILE, CERT_FILE, ROOT_FILE].map((f) => readFile(join(certificatesDir, f), 'utf8')));
  } catch (err) {
    throw new CAError('IDENTITY_NOT_FOUND', `no node identity in ${certificatesDir}: ${(err as Error).message}`);
  }
  const [keyPem = '', certPem = '', rootPem = ''] = files;
  return identityFrom(keyPem, certPem, rootPem);
}
