// The image store's public surface, for the executor and the daemon.
export { ImageStore } from './store.js';
export type { ImageStoreOptions, PullOptions, PullResult, ImageRecord, RootfsMount, RootfsPlan, GcOptions, GcResult } from './store.js';
export type { ImageConfig, ImageHealthcheck } from './image-config.js';
export { ImagePullError, ImageStoreError, InvalidReferenceError } from './errors.js';
export type { ImagePullErrorCode, ImageStoreErrorCode } from './errors.js';
export { parseReference, canonicalReference, familiarReference, type ImageReference } from './reference.js';
export { decodeRegistryAuth, encodeRegistryAuth, type RegistryCredentials } from './auth.js';
export { hostPlatform, type Platform } from './platform.js';
