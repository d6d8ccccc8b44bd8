// Random identifiers in swarm's shape: 128 bits from the CSPRNG, written in base36 and left-padded
// with zeros to 25 characters (36^25 > 2^128, so every value fits).
import { randomBytes } from 'node:crypto';

export const ID_LENGTH = 25;

/** Big-endian bytes → base36, zero-padded on the left to `width` characters. */
export function bytesToBase36(bytes: Uint8Array, width: number): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  const text = n.toString(36);
  if (text.length > width) throw new RangeError(`value needs ${text.length} base36 characters, more than ${width}`);
  return text.padStart(width, '0');
}

/** A fresh random ID: 25 base36 characters. Used for node IDs, cluster IDs and token secrets. */
export function newRandomId(): string {
  return bytesToBase36(randomBytes(16), ID_LENGTH);
}

export const newNodeId = newRandomId;
export const newClusterId = newRandomId;

const ID_PATTERN = /^[0-9a-z]{25}$/;

export function isRandomId(value: string): boolean {
  return ID_PATTERN.test(value);
}
