// Object IDs in Docker's format: 128 random bits written in lowercase base36, left-padded with
// zeros to 25 characters (36^25 > 2^128, so every value fits). Made by the proposer before a
// transaction is proposed, never while applying: apply must be deterministic.
import { randomPool } from '../../raft/storage/random-pool.js';

export const ID_LENGTH = 25;

export function newId(): string {
  const n = BigInt(`0x${randomPool.bytes(16).toString('hex')}`);
  return n.toString(36).padStart(ID_LENGTH, '0');
}

/** True for a string shaped like a store ID (what newId makes). */
export function isStoreId(s: string): boolean {
  return s.length === ID_LENGTH && /^[0-9a-z]+$/.test(s);
}
