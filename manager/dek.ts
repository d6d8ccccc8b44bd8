// Where the manager's data encryption key (DEK, 32 bytes) comes from.
//
// The runtime's default is the key manager (manager/keymanager `KeyManagerDekSource`): the DEK
// wrapped by a KEK, the KEK being the operator's unlock key under autolock, the node's TLS key
// encrypted too, DEK rotation, and every manager following the cluster's autolock setting.
// `FileDekSource` (the DEK in plain form in <dataRoot>/raft-dek.key, mode 0600) is the older,
// simpler source, kept for tests of Raft/membership alone; the key manager takes such a file over
// at the next restart.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';

import type { Logger } from 'pino';

import { ManagerError } from './errors.js';
import type { MemoryStore } from './store/index.js';

export const DEK_BYTES = 32;

/** What a running manager hands its key source once the store is open (manager.ts boot). */
export interface KeyRuntimeContext {
  readonly store: MemoryStore;
  /** Re-seals the running Raft log under a new DEK (RaftNode.rotateKey). */
  readonly rotateLogKey: (dek: Uint8Array) => Promise<void>;
  readonly logger: Logger;
}

/** Loops a key source runs while the manager runs (the autolock sync); stopped at close. */
export interface KeyRuntime {
  stop(): Promise<void>;
}

export interface DekSource {
  /** Makes and stores a new DEK (swarm init / join); fails if one exists. */
  create(): Promise<Uint8Array>;
  /**
   * The stored DEK (restart). A source that can be locked (autolock) throws the key manager's
   * LockedError without `unlockKey`, and its InvalidUnlockKeyError for a wrong one.
   */
  load(unlockKey?: string): Promise<Uint8Array>;
  /** Forgets the key (swarm leave). */
  destroy(): Promise<void>;
  /** Opens the log with the current DEK, or the pending one after a crash mid-rotation. */
  withDek?<T>(open: (dek: Uint8Array) => Promise<T>): Promise<T>;
  /** The node's TLS key as plain PEM, for a source that encrypts the key file (after load). */
  loadTlsKey?(): Promise<string>;
  /** Starts what follows the cluster's key settings (after load/create and the store is open). */
  start?(ctx: KeyRuntimeContext): KeyRuntime;
}

export const INTERIM_DEK_FILE = 'raft-dek.key';

export class FileDekSource implements DekSource {
  readonly file: string;

  constructor(dataRoot: string) {
    this.file = path.join(dataRoot, INTERIM_DEK_FILE);
  }

  async create(): Promise<Uint8Array> {
    const dek = randomBytes(DEK_BYTES);
    const tmp = `${this.file}.tmp-${process.pid}`;
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(dek);
      await handle.chmod(0o600);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, this.file);
    return new Uint8Array(dek);
  }

  async load(): Promise<Uint8Array> {
    let dek: Buffer;
    try {
      dek = await readFile(this.file);
    } catch (err) {
      throw new ManagerError('NOT_INITIALIZED', `no data encryption key at ${this.file}: ${(err as Error).message}`);
    }
    if (dek.byteLength !== DEK_BYTES) throw new ManagerError('NOT_INITIALIZED', `${this.file} holds ${dek.byteLength} bytes, not a ${DEK_BYTES}-byte key`);
    return new Uint8Array(dek);
  }

  async destroy(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
