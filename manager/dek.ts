// Where the manager's data encryption key (DEK, 32 bytes) comes from.
//
// INTERIM: `FileDekSource` keeps the DEK in plain form in <dataRoot>/raft-dek.key (mode 0600).
// The key manager (manager/keymanager, later) replaces it: the DEK wrapped by a KEK, the KEK
// being the operator's unlock key under autolock, plus rotation. It plugs in through
// `DekSource` (ManagerOptions.dekSource); nothing else in the manager reads this file.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';

import { ManagerError } from './errors.js';

export const DEK_BYTES = 32;

export interface DekSource {
  /** Makes and stores a new DEK (swarm init / join); fails if one exists. */
  create(): Promise<Uint8Array>;
  /** The stored DEK (restart). */
  load(): Promise<Uint8Array>;
  /** Forgets the key (swarm leave). */
  destroy(): Promise<void>;
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
