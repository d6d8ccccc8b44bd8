// Node certificate lifetime: the cluster's --cert-expiry, default 90 days, at least 1 hour.
import { CAError } from './errors.js';

export const DEFAULT_NODE_CERT_EXPIRY_MS = 90 * 24 * 3600 * 1000;
export const MIN_NODE_CERT_EXPIRY_MS = 3600 * 1000;
/** Node certificates start a little in the past so a peer whose clock lags still accepts them. */
export const DEFAULT_CERT_BACKDATE_MS = 5 * 60 * 1000;

export interface CertExpiryPolicy {
  readonly expiryMs: number;
  readonly backdateMs: number;
}

export interface CertExpiryOptions {
  readonly expiryMs?: number;
  readonly backdateMs?: number;
  /**
   * TESTS ONLY: accept an expiry below the 1-hour minimum (down to this many ms), so a test can watch
   * a real certificate reach its renewal window in seconds. Never set from user input.
   */
  readonly unsafeMinimumExpiryMsForTests?: number;
}

export function certExpiryPolicy(options: CertExpiryOptions = {}): CertExpiryPolicy {
  const expiryMs = options.expiryMs ?? DEFAULT_NODE_CERT_EXPIRY_MS;
  const minimumMs = options.unsafeMinimumExpiryMsForTests ?? MIN_NODE_CERT_EXPIRY_MS;
  if (!Number.isFinite(expiryMs) || expiryMs < minimumMs) {
    throw new CAError('CERT_EXPIRY_TOO_SHORT', `node certificate expiry must be at least ${formatMs(minimumMs)}, got ${formatMs(expiryMs)}`);
  }
  return { expiryMs, backdateMs: options.backdateMs ?? DEFAULT_CERT_BACKDATE_MS };
}

function formatMs(ms: number): string {
  if (ms % 3600000 === 0) return `${ms / 3600000}h`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
