// Join tokens in Docker's format: SWMTKN-1-<digest>-<secret>.
//   <digest>: SHA-256 of the root CA certificate (DER) as a number in base36, zero-padded to 50.
//   <secret>: 128 CSPRNG bits in base36, zero-padded to 25.
// The digest lets a joiner check the CA it is shown before trusting it; the secret is the credential.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { CAError } from './errors.js';
import { bytesToBase36, ID_LENGTH } from './ids.js';
import { MANAGER_ROLE, WORKER_ROLE, type NodeRole } from './roles.js';

export const TOKEN_PREFIX = 'SWMTKN';
export const TOKEN_VERSION = 1;
export const DIGEST_LENGTH = 50;
const TOKEN_PATTERN = /^SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})$/;

export interface ParsedJoinToken {
  readonly version: 1;
  readonly rootDigest: string;
  readonly secret: string;
}

/** The digest part of a join token for this root certificate (DER bytes). */
export function rootDigestBase36(rootDer: Uint8Array): string {
  return bytesToBase36(createHash('sha256').update(rootDer).digest(), DIGEST_LENGTH);
}

/** The hex SHA-256 of the root's DER, for display (`swarm ca`, error messages). */
export function rootDigestHex(rootDer: Uint8Array): string {
  return createHash('sha256').update(rootDer).digest('hex');
}

export function generateJoinToken(rootDer: Uint8Array): string {
  const secret = bytesToBase36(randomBytes(16), ID_LENGTH);
  return `${TOKEN_PREFIX}-${TOKEN_VERSION}-${rootDigestBase36(rootDer)}-${secret}`;
}

/** Splits a token; throws MALFORMED_TOKEN without echoing the token (it is a secret). */
export function parseJoinToken(token: string): ParsedJoinToken {
  const m = TOKEN_PATTERN.exec(token);
  if (m === null || m[1] === undefined || m[2] === undefined) {
    throw new CAError('MALFORMED_TOKEN', 'invalid join token: expected SWMTKN-1-<50 base36 chars>-<25 base36 chars>');
  }
  return { version: 1, rootDigest: m[1], secret: m[2] };
}

/** The cluster's current join tokens, one per role. Data, so the store can hold it. */
export interface JoinTokens {
  readonly worker: string;
  readonly manager: string;
}

export function newJoinTokens(rootDer: Uint8Array): JoinTokens {
  return { worker: generateJoinToken(rootDer), manager: generateJoinToken(rootDer) };
}

/** `swarm join-token --rotate <role>`: a fresh secret for one role; the old token stops working for joins. */
export function rotateJoinToken(tokens: JoinTokens, role: NodeRole, rootDer: Uint8Array): JoinTokens {
  return role === MANAGER_ROLE
    ? { ...tokens, manager: generateJoinToken(rootDer) }
    : { ...tokens, worker: generateJoinToken(rootDer) };
}

/** Both tokens regenerated for a new root (after a root rotation the digest changes). */
export function reissueJoinTokensForRoot(rootDer: Uint8Array): JoinTokens {
  return newJoinTokens(rootDer);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Which role a presented token grants, or null. Compares in constant time per candidate and checks
 * both tokens whatever the outcome, so timing does not tell which role's token was close.
 */
export function matchJoinToken(tokens: JoinTokens, presented: string): NodeRole | null {
  const isManager = sameSecret(tokens.manager, presented);
  const isWorker = sameSecret(tokens.worker, presented);
  if (isManager) return MANAGER_ROLE;
  if (isWorker) return WORKER_ROLE;
  return null;
}
