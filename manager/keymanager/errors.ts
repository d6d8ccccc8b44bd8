// Typed errors of the key manager, each with a message an operator can act on.
export type KeyManagerErrorCode =
  | 'ERR_KEYMANAGER_LOCKED'
  | 'ERR_KEYMANAGER_INVALID_KEY'
  | 'ERR_KEYMANAGER_NOT_INITIALIZED'
  | 'ERR_KEYMANAGER_EXISTS'
  | 'ERR_KEYMANAGER_CORRUPT'
  | 'ERR_KEYMANAGER_NOT_LOCKED';

export class KeyManagerError extends Error {
  constructor(
    readonly code: KeyManagerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KeyManagerError';
  }
}

/** dockerd's text for a locked manager (docker CLI users know it). */
export const LOCKED_MESSAGE =
  'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.';

export class LockedError extends KeyManagerError {
  constructor() {
    super('ERR_KEYMANAGER_LOCKED', LOCKED_MESSAGE);
  }
}

export class InvalidUnlockKeyError extends KeyManagerError {
  constructor(detail: string) {
    super('ERR_KEYMANAGER_INVALID_KEY', `invalid unlock key: ${detail}`);
  }
}
