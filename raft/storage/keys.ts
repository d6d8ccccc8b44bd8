// LevelDB key layout of the durable Raft log. One-byte prefixes keep each kind in its own
// ordered range; entry keys carry the index big-endian so key order is index order.
//   'k'             key-check record (tells a wrong key from corruption)
//   'h'             hard state
//   's'             snapshot (metadata and application data)
//   'e' + u64 BE    entry at that index

const PREFIX_ENTRY = 0x65; // 'e'
export const KEY_CHECK = Uint8Array.of(0x6b); // 'k'
export const KEY_HARD_STATE = Uint8Array.of(0x68); // 'h'
export const KEY_SNAPSHOT = Uint8Array.of(0x73); // 's'
/** Bounds of the entry range, for iterators: [ENTRIES_GTE, ENTRIES_LT). */
export const ENTRIES_GTE = Uint8Array.of(PREFIX_ENTRY);
export const ENTRIES_LT = Uint8Array.of(PREFIX_ENTRY + 1);

const TWO_POW_32 = 0x1_0000_0000;

export function entryKey(index: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = PREFIX_ENTRY;
  k.writeUInt32BE(Math.floor(index / TWO_POW_32), 1);
  k.writeUInt32BE(index >>> 0, 5);
  return k;
}

/** The index in an entry key, or null if the key is not a well-formed entry key. */
export function entryIndex(key: Uint8Array): number | null {
  if (key.byteLength !== 9 || key[0] !== PREFIX_ENTRY) return null;
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const hi = b.readUInt32BE(1);
  const v = hi * TWO_POW_32 + b.readUInt32BE(5);
  return Number.isSafeInteger(v) ? v : null;
}
