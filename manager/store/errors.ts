// The store's typed errors. Messages follow what dockerd says for the same situation, so the
// Docker-compatible API can pass them through (see shared/reference/docker-api.md §1.3).
import type { Kind } from './types.js';

export type StoreErrorCode =
  | 'ERR_STORE_SEQUENCE'
  | 'ERR_STORE_NAME_CONFLICT'
  | 'ERR_STORE_EXISTS'
  | 'ERR_STORE_NOT_FOUND'
  | 'ERR_STORE_AMBIGUOUS'
  | 'ERR_STORE_INVALID'
  | 'ERR_STORE_TOO_LARGE'
  | 'ERR_STORE_NO_PROPOSER'
  | 'ERR_STORE_CORRUPT_ENTRY'
  | 'ERR_STORE_ENTRY_VERSION'
  | 'ERR_STORE_CLOSED'
  | 'ERR_STORE_WATCH_TOO_OLD'
  | 'ERR_STORE_WATCH_OVERFLOW'
  | 'ERR_STORE_WATCH_RESET';

export abstract class StoreError extends Error {
  abstract readonly code: StoreErrorCode;
}

/** An update or delete carried a version that is no longer the object's current one. Nothing was changed. */
export class SequenceConflictError extends StoreError {
  readonly code = 'ERR_STORE_SEQUENCE';
  constructor(readonly kind: Kind, readonly id: string, readonly expected: number, readonly actual: number) {
    // The message is exactly dockerd's: clients match on it.
    super('update out of sequence');
  }
}

export class NameConflictError extends StoreError {
  readonly code = 'ERR_STORE_NAME_CONFLICT';
  constructor(readonly kind: Kind, readonly objectName: string, readonly existingId: string) {
    super(`name conflicts with an existing object: ${kind} ${objectName} already exists`);
  }
}

export class ExistsError extends StoreError {
  readonly code = 'ERR_STORE_EXISTS';
  constructor(readonly kind: Kind, readonly id: string) {
    super(`${kind} ${id} already exists`);
  }
}

export class NotFoundError extends StoreError {
  readonly code = 'ERR_STORE_NOT_FOUND';
  constructor(readonly kind: Kind, readonly ref: string) {
    super(`${kind} ${ref} not found`);
  }
}

export class AmbiguousError extends StoreError {
  readonly code = 'ERR_STORE_AMBIGUOUS';
  constructor(readonly kind: Kind, readonly ref: string, readonly matches: number) {
    super(`${kind} ${ref} is ambiguous (${matches} matches found)`);
  }
}

/** The object handed to a transaction is not storable (missing ID or name, wrong shape). */
export class InvalidObjectError extends StoreError {
  readonly code = 'ERR_STORE_INVALID';
}

export class TransactionTooLargeError extends StoreError {
  readonly code = 'ERR_STORE_TOO_LARGE';
  constructor(readonly sizeBytes: number, readonly limitBytes: number, readonly actions: number, readonly limitActions: number) {
    super(
      `store transaction too large: ${actions} action(s), ${sizeBytes} bytes encoded (limits ${limitActions} actions, ${limitBytes} bytes); split it into several transactions`,
    );
  }
}

export class NoProposerError extends StoreError {
  readonly code = 'ERR_STORE_NO_PROPOSER';
  constructor() {
    super('store: no Raft proposer attached; this store cannot accept writes yet');
  }
}

/** A committed entry could not be decoded. Every manager skips it alike; it is logged, never applied. */
export class CorruptEntryError extends StoreError {
  readonly code = 'ERR_STORE_CORRUPT_ENTRY';
  constructor(readonly index: number, reason: string) {
    super(`store: committed entry ${index} is not a store transaction: ${reason}`);
  }
}

/**
 * A committed entry this build cannot read because a newer Shoal wrote it (an unknown format, op or
 * kind). The store stops applying there rather than skip it and drift from the other managers.
 */
export class StoreEntryVersionError extends StoreError {
  readonly code = 'ERR_STORE_ENTRY_VERSION';
  constructor(readonly index: number, cause: Error) {
    super(`store: committed entry ${index} was written by a newer Shoal (${cause.message}); this manager stops applying here: upgrade it to the version of the other managers`, { cause });
  }
}

export class StoreClosedError extends StoreError {
  readonly code = 'ERR_STORE_CLOSED';
  constructor() {
    super('store: closed');
  }
}

/**
 * Base of the three ways a watch can lose continuity. The remedy is always the same: re-list
 * (read the store, note `store.version`) and watch again from that version.
 */
export abstract class ResyncRequiredError extends StoreError {}

/** The requested version is older than the oldest change still held in memory. */
export class TooOldError extends ResyncRequiredError {
  readonly code = 'ERR_STORE_WATCH_TOO_OLD';
  constructor(readonly sinceVersion: number, readonly oldestVersion: number) {
    super(
      `watch from version ${sinceVersion} is too old, resync: changes are kept after version ${oldestVersion} only; list the objects again and watch from the store's current version`,
    );
  }
}

/** The subscriber read too slowly and changes it had not read were dropped from the bounded ring. */
export class WatchOverflowError extends ResyncRequiredError {
  readonly code = 'ERR_STORE_WATCH_OVERFLOW';
  constructor(readonly lastDeliveredVersion: number, readonly ringEvents: number) {
    super(
      `watch fell more than ${ringEvents} changes behind (last delivered version ${lastDeliveredVersion}) and was dropped, resync: list the objects again and watch from the store's current version`,
    );
  }
}

/** The whole store was replaced by a snapshot from the leader; individual changes are unknown. */
export class WatchResetError extends ResyncRequiredError {
  readonly code = 'ERR_STORE_WATCH_RESET';
  constructor(readonly snapshotIndex: number) {
    super(`the store was replaced by a snapshot at version ${snapshotIndex}, resync: list the objects again and watch from version ${snapshotIndex}`);
  }
}
