// Typed failures of the durable Raft log. Each names what a person has to look at.

/** Which stored record a failure concerns. */
export type RecordKind = 'entry' | 'hardState' | 'snapshot' | 'keyCheck';

/**
 * A stored record failed authentication, did not decode, sits at the wrong place, or the log
 * has a gap. Nothing from a corrupt record is ever applied; the log refuses to open.
 */
export class CorruptionError extends Error {
  readonly code = 'ERR_RAFT_CORRUPT';
  constructor(
    readonly dir: string,
    readonly record: RecordKind,
    /** The entry index concerned; null for the hard-state, snapshot and key-check records. */
    readonly index: number | null,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `raft log ${dir}: ${record === 'entry' ? `entry ${index}` : `${record} record`} is corrupt: ${reason}; ` +
        'restore this member from a healthy peer (remove it and join again) rather than repairing the files',
      options,
    );
    this.name = 'CorruptionError';
  }
}

/** The data-encryption key given to open the log is not the one it was sealed with. */
export class WrongKeyError extends Error {
  readonly code = 'ERR_RAFT_WRONG_KEY';
  constructor(readonly dir: string) {
    super(
      `raft log ${dir}: the data-encryption key does not open this log (wrong key, or the key-check record is damaged); ` +
        'unlock the manager with the key it was last sealed with',
    );
    this.name = 'WrongKeyError';
  }
}

/** An I/O failure, a misuse of the API, or a log that stopped after an earlier failure. */
export class StorageError extends Error {
  readonly code = 'ERR_RAFT_STORAGE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageError';
  }
}
