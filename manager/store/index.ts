export * from './types.js';
export * from './errors.js';
export { newId, isStoreId, ID_LENGTH } from './ids.js';
export * from './query.js';
export type { IndexName } from './tables.js';
export {
  MemoryStore,
  type MemoryStoreOptions,
  type Proposer,
  type ReadTx,
  type Tx,
  type UpdateResult,
  type StoreStats,
  type AppliedEntry,
  type StoreSnapshot,
} from './memory-store.js';
export { StoreWatch, type ChangeEvent, type ChangeAction, type WatchOptions } from './watch.js';
export { ReplicatedStore, type ReplicatedStoreOptions, DEFAULT_SNAPSHOT_INTERVAL_ENTRIES, DEFAULT_SNAPSHOT_KEEP_ENTRIES } from './replicated.js';
