// The autolock unlock key: `SWMKEY-1-<standard base64 of 32 random bytes>`, as swarm prints it.
// Only the operator (and the managers' replicated Cluster object, sealed under the DEK) holds it.
import { randomBytes } from 'node:crypto';

import { KeyManagerError } from './errors.js';

export const UNLOCK_KEY_PREFIX = 'SWMKEY-1-';
export const UNLOCK_KEY_BYTES = 32;

export function generateUnlockKey(): string {
  return UNLOCK_KEY_PREFIX + randomBytes(UNLOCK_KEY_BYTES).toString('base64');
}

/** The key's 32 secret bytes; throws `invalid unlock key` naming what is wrong with its form. */
export function parseUnlockKey(key: string): Uint8Array {
  const trimmed = key.trim();
  if (!trimmed.startsWith(UNLOCK_KEY_PREFIX)) {
    throw new KeyManagerError('ERR_KEYMANAGER_INVALID_KEY', `invalid unlock key: it must start with ${UNLOCK_KEY_PREFIX} (as printed by swarm unlock-key)`);
  }
  const body = trimmed.slice(UNLOCK_KEY_PREFIX.length);
  const bytes = Buffer.from(body, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || bytes.byteLength !== UNLOCK_KEY_BYTES) {
    throw new KeyManagerError('ERR_KEYMANAGER_INVALID_KEY', `invalid unlock key: after ${UNLOCK_KEY_PREFIX} it must hold ${UNLOCK_KEY_BYTES} bytes in base64`);
  }
  return new Uint8Array(bytes);
}
