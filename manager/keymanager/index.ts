export { KeyManager, KeyManagerDekSource, KEYS_FILE, type ApplyDek, type KeyManagerOptions, type KeyManagerStatus } from './key-manager.js';
export { KeyManagerError, LockedError, InvalidUnlockKeyError, LOCKED_MESSAGE, type KeyManagerErrorCode } from './errors.js';
export { generateUnlockKey, parseUnlockKey, UNLOCK_KEY_PREFIX } from './unlock-key.js';
export { encryptKeyPem, decryptKeyPem, isEncryptedKeyPem } from './tls-key.js';
export { desiredUnlockKey, syncAutolock, watchClusterKeys, type ClusterKeySync, type ClusterKeyView } from './cluster-sync.js';
