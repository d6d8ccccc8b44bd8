// Typed errors of the cluster identity layer. `code` is stable (tests and callers branch on it);
// the message says what happened and what to do.

export type CAErrorCode =
  | 'MALFORMED_TOKEN'
  | 'INVALID_TOKEN'
  | 'CA_DIGEST_MISMATCH'
  | 'INVALID_CSR'
  | 'CERT_EXPIRY_TOO_SHORT'
  | 'INVALID_CERTIFICATE'
  | 'UNTRUSTED_ROOT'
  | 'ROTATION_IN_PROGRESS'
  | 'NO_ROTATION'
  | 'NODE_REMOVED'
  | 'UNKNOWN_NODE'
  | 'IDENTITY_NOT_FOUND';

export class CAError extends Error {
  override readonly name = 'CAError';
  constructor(
    readonly code: CAErrorCode,
    message: string,
  ) {
    super(message);
  }
}
