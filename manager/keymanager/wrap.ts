// Key wrapping: AES-256-GCM of a key under a key-encryption key, and key derivation from the
// unlock key. A wrapped key is `0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)`, with a label as
// additional authenticated data so a wrapped DEK cannot be passed off as a wrapped TLS passphrase.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export const KEY_BYTES = 32;
const FORMAT = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export type WrapLabel = 'raft-dek' | 'raft-dek-pending' | 'tls-key-passphrase';

export function wrapKey(kek: Uint8Array, key: Uint8Array, label: WrapLabel): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(Buffer.from(`shoal-key-wrap-v1:${label}`));
  const body = Buffer.concat([cipher.update(key), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT), nonce, body, cipher.getAuthTag()]);
}

/** The key, or null when the KEK is wrong or the bytes were changed (GCM authentication failed). */
export function unwrapKey(kek: Uint8Array, wrapped: Uint8Array, label: WrapLabel): Uint8Array | null {
  if (wrapped.byteLength < 1 + NONCE_BYTES + TAG_BYTES || wrapped[0] !== FORMAT) return null;
  const nonce = wrapped.subarray(1, 1 + NONCE_BYTES);
  const body = wrapped.subarray(1 + NONCE_BYTES, wrapped.byteLength - TAG_BYTES);
  const tag = wrapped.subarray(wrapped.byteLength - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, nonce);
    decipher.setAAD(Buffer.from(`shoal-key-wrap-v1:${label}`));
    decipher.setAuthTag(tag);
    return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]));
  } catch {
    return null;
  }
}

/**
 * The KEK from the unlock key's 32 random bytes. They have full entropy, so HKDF (no slow
 * password hashing) is enough; the salt is per manager, so one unlock key gives each manager
 * its own KEK.
 */
export function kekFromUnlockKey(secret: Uint8Array, salt: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, salt, 'shoal manager KEK v1', KEY_BYTES));
}

export function newKey(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_BYTES));
}
