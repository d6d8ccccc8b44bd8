// The node's TLS private key file (`swarm-node.key`) under autolock: standard encrypted PKCS#8
// PEM (`ENCRYPTED PRIVATE KEY`, PBES2 with AES-256-CBC), so `openssl pkey -passin` reads it with
// the passphrase. Without autolock the file stays plain PKCS#8, as ca/identity.ts writes it.
import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { KeyManagerError } from './errors.js';
import { writeFileAtomic } from './files.js';

const ENCRYPTED_HEADER = '-----BEGIN ENCRYPTED PRIVATE KEY-----';

export function isEncryptedKeyPem(pem: string): boolean {
  return pem.includes(ENCRYPTED_HEADER);
}

export function encryptKeyPem(pem: string, passphrase: Uint8Array): string {
  return createPrivateKey({ key: pem, format: 'pem' })
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: Buffer.from(passphrase) })
    .toString();
}

/** The plain PKCS#8 PEM; null when the passphrase does not open it. */
export function decryptKeyPem(pem: string, passphrase: Uint8Array): string | null {
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase: Buffer.from(passphrase) }).export({ type: 'pkcs8', format: 'pem' }).toString();
  } catch {
    return null;
  }
}

export async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new KeyManagerError('ERR_KEYMANAGER_NOT_INITIALIZED', `no node TLS key at ${file}: ${(err as Error).message}`);
  }
}

/** Writes the key (encrypted when `passphrase` is given), mode 0600, atomically. */
export async function writeKeyFile(file: string, plainPem: string, passphrase: Uint8Array | null): Promise<void> {
  await writeFileAtomic(file, passphrase === null ? plainPem : encryptKeyPem(plainPem, passphrase), 0o600);
}
