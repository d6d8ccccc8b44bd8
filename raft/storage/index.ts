export { DurableLog, type DurableLogOptions, type SaveRequest } from './durable-log.js';
export { CorruptionError, StorageError, WrongKeyError, type RecordKind } from './errors.js';
export { DEK_BYTES } from './seal.js';
