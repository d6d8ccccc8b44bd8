import { createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NONCE_BYTES, SEAL_OVERHEAD_BYTES, SEAL_VERSION, open, seal, sealingKey } from './seal.js';

describe('seal', () => {
  const dek = randomBytes(32);
  const aad = Buffer.from('e/0000000000000042');
  const plain = Buffer.from('an entry of the raft log');

  it('a key given as bytes or as a KeyObject seals the same format, and each opens what the other sealed', () => {
    const key = sealingKey(dek);
    const byBytes = seal(dek, randomBytes(NONCE_BYTES), aad, plain);
    const byKey = seal(key, randomBytes(NONCE_BYTES), aad, plain);
    for (const sealed of [byBytes, byKey]) {
      expect(sealed.byteLength).toBe(SEAL_OVERHEAD_BYTES + plain.byteLength);
      expect(sealed[0]).toBe(SEAL_VERSION);
      expect(open(dek, aad, sealed)).toEqual(plain);
      expect(open(key, aad, sealed)).toEqual(plain);
    }
    // The envelope, opened by hand: version ‖ nonce ‖ ciphertext ‖ tag, the key's database key as AAD.
    const d = createDecipheriv('aes-256-gcm', dek, byKey.subarray(1, 1 + NONCE_BYTES));
    d.setAAD(aad);
    d.setAuthTag(byKey.subarray(byKey.byteLength - 16));
    expect(Buffer.concat([d.update(byKey.subarray(1 + NONCE_BYTES, byKey.byteLength - 16)), d.final()])).toEqual(plain);
  });

  it('another key, another AAD or a changed byte does not open', () => {
    const sealed = seal(sealingKey(dek), randomBytes(NONCE_BYTES), aad, plain);
    expect(open(sealingKey(randomBytes(32)), aad, sealed)).toBe('auth');
    expect(open(sealingKey(dek), Buffer.from('e/0000000000000043'), sealed)).toBe('auth');
    const flipped = Buffer.from(sealed);
    flipped[1 + NONCE_BYTES] = flipped[1 + NONCE_BYTES]! ^ 1;
    expect(open(dek, aad, flipped)).toBe('auth');
  });
});
