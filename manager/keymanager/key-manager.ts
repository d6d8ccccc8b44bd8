// One manager's keys at rest: the Raft data encryption key (DEK) wrapped by a key encryption key
// (KEK), and — under autolock — the node's TLS key encrypted too.
//
//   no autolock   KEK = 32 random bytes kept in the same file (as swarm keeps it in the node's
//                 state): the disk alone opens everything, the point being that the DEK can be
//                 rotated and the KEK later replaced by an unlock key without re-sealing.
//   autolock      KEK = HKDF(unlock key, per-manager salt); only the operator holds the unlock
//                 key, so after a restart the manager is locked until `unlock(key)`. The TLS key
//                 file is encrypted under a random passphrase that is itself wrapped by the KEK,
//                 so replacing the unlock key rewrites one file atomically.
//
// <dir>/swarm-raft-keys.json (0600, written atomically) holds the wrapped keys. DEK rotation is
// crash-safe: the new DEK is first stored as `pendingDek`, then handed to the caller (which
// re-seals the log: DurableLog.rotateKey), then promoted; a restart between the steps opens the
// log with whichever of the two it is sealed under (`withDek`).
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';

import { pino, type Logger } from 'pino';

import type { DekSource, KeyRuntime, KeyRuntimeContext } from '../dek.js';
import { watchClusterKeys } from './cluster-sync.js';
import { InvalidUnlockKeyError, KeyManagerError, LockedError } from './errors.js';
import { writeFileAtomic } from './files.js';
import { decryptKeyPem, isEncryptedKeyPem, readKeyFile, writeKeyFile } from './tls-key.js';
import { parseUnlockKey } from './unlock-key.js';
import { kekFromUnlockKey, KEY_BYTES, newKey, unwrapKey, wrapKey } from './wrap.js';

export const KEYS_FILE = 'swarm-raft-keys.json';
const FORMAT = 1;
const SALT_BYTES = 16;

type KekRecord = { readonly kind: 'plain'; readonly key: string } | { readonly kind: 'unlock-key'; readonly salt: string };

interface KeysFile {
  readonly format: typeof FORMAT;
  readonly kek: KekRecord;
  readonly dek: string;
  readonly pendingDek?: string;
  /** Autolock only: the passphrase of the encrypted TLS key file, wrapped by the KEK. */
  readonly tlsKeyPassphrase?: string;
  readonly dekRotations: number;
}

export interface KeyManagerOptions {
  /** The node's TLS key file (ca/identity.ts KEY_FILE); encrypted under autolock, plain otherwise. */
  readonly tlsKeyFile?: string;
  readonly logger?: Logger;
}

/** Re-seals the Raft log under the new DEK (DurableLog.rotateKey), resolving once it is durable. */
export type ApplyDek = (newDek: Uint8Array) => Promise<void>;

export interface KeyManagerStatus {
  readonly locked: boolean;
  readonly autolock: boolean;
  readonly dekRotations: number;
  readonly rotationPending: boolean;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

export class KeyManager {
  private kek: Uint8Array | null = null;
  private dekNow: Uint8Array | null = null;
  private pending: Uint8Array | null = null;
  private tlsPass: Uint8Array | null = null;
  private unlockKeyNow: string | null = null;
  /** One key change at a time, in call order. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;

  private constructor(
    readonly file: string,
    private state: KeysFile,
    private readonly opts: KeyManagerOptions,
  ) {
    this.log = (opts.logger ?? pino({ name: 'keymanager', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({ component: 'keymanager' });
  }

  // ---------------------------------------------------------------------------- lifecycle

  /** `swarm init` / `join`: a new DEK, under a plain KEK or (autolock) under the unlock key. */
  static async create(dir: string, opts: KeyManagerOptions & { readonly unlockKey?: string | null; readonly dek?: Uint8Array } = {}): Promise<KeyManager> {
    const file = path.join(dir, KEYS_FILE);
    if (await readFile(file).then(() => true, () => false)) {
      throw new KeyManagerError('ERR_KEYMANAGER_EXISTS', `${file} already exists: this node already has keys (leave the swarm first, or open them)`);
    }
    if (opts.dek !== undefined && opts.dek.byteLength !== KEY_BYTES) throw new KeyManagerError('ERR_KEYMANAGER_CORRUPT', `a data encryption key must be ${KEY_BYTES} bytes, not ${opts.dek.byteLength}`);
    const dek = opts.dek !== undefined ? new Uint8Array(opts.dek) : newKey();
    const unlockKey = opts.unlockKey ?? null;
    const { record, kek } = KeyManager.newKek(unlockKey);
    const tlsPass = unlockKey === null ? null : newKey();
    const state: KeysFile = {
      format: FORMAT,
      kek: record,
      dek: b64(wrapKey(kek, dek, 'raft-dek')),
      ...(tlsPass !== null ? { tlsKeyPassphrase: b64(wrapKey(kek, tlsPass, 'tls-key-passphrase')) } : {}),
      dekRotations: 0,
    };
    await writeFileAtomic(file, JSON.stringify(state, null, 2));
    const km = new KeyManager(file, state, opts);
    km.kek = kek;
    km.dekNow = dek;
    km.tlsPass = tlsPass;
    km.unlockKeyNow = unlockKey;
    await km.reconcileTlsKeyFile();
    return km;
  }

  /** Restart: without autolock the keys open at once; with it the manager is locked until `unlock`. */
  static async open(dir: string, opts: KeyManagerOptions = {}): Promise<KeyManager> {
    const file = path.join(dir, KEYS_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new KeyManagerError('ERR_KEYMANAGER_NOT_INITIALIZED', `no manager keys at ${file}: ${(err as Error).message}`);
    }
    const state = KeyManager.parse(file, text);
    const km = new KeyManager(file, state, opts);
    if (state.kek.kind === 'plain') {
      km.openWith(unb64(state.kek.key), null, () => new KeyManagerError('ERR_KEYMANAGER_CORRUPT', `${file}: the stored key does not open the data encryption key (the file was changed or damaged)`));
      await km.reconcileTlsKeyFile();
    }
    return km;
  }

  private static parse(file: string, text: string): KeysFile {
    let o: Partial<KeysFile>;
    try {
      o = JSON.parse(text) as Partial<KeysFile>;
    } catch (err) {
      throw new KeyManagerError('ERR_KEYMANAGER_CORRUPT', `${file} is not valid JSON (${(err as Error).message}); restore it from a backup or rejoin this manager`);
    }
    if (o.format !== FORMAT || typeof o.dek !== 'string' || o.kek === undefined || (o.kek.kind !== 'plain' && o.kek.kind !== 'unlock-key')) {
      throw new KeyManagerError('ERR_KEYMANAGER_CORRUPT', `${file} is not a format-${FORMAT} key file`);
    }
    return { ...o, dekRotations: o.dekRotations ?? 0 } as KeysFile;
  }

  private static newKek(unlockKey: string | null): { record: KekRecord; kek: Uint8Array } {
    if (unlockKey === null) {
      const kek = newKey();
      return { record: { kind: 'plain', key: b64(kek) }, kek };
    }
    const salt = new Uint8Array(randomBytes(SALT_BYTES));
    return { record: { kind: 'unlock-key', salt: b64(salt) }, kek: kekFromUnlockKey(parseUnlockKey(unlockKey), salt) };
  }

  /** Unwraps everything with `kek`; throws `refuse()` (state unchanged) when it does not open the DEK. */
  private openWith(kek: Uint8Array, unlockKey: string | null, refuse: () => Error): void {
    const dek = unwrapKey(kek, unb64(this.state.dek), 'raft-dek');
    if (dek === null || dek.byteLength !== KEY_BYTES) throw refuse();
    const pending = this.state.pendingDek === undefined ? null : unwrapKey(kek, unb64(this.state.pendingDek), 'raft-dek-pending');
    const tlsPass = this.state.tlsKeyPassphrase === undefined ? null : unwrapKey(kek, unb64(this.state.tlsKeyPassphrase), 'tls-key-passphrase');
    if (this.state.tlsKeyPassphrase !== undefined && tlsPass === null) {
      throw new KeyManagerError('ERR_KEYMANAGER_CORRUPT', `${this.file}: the TLS key passphrase does not open with the key that opens the DEK (the file was changed)`);
    }
    this.kek = kek;
    this.dekNow = dek;
    this.pending = pending;
    this.tlsPass = tlsPass;
    this.unlockKeyNow = unlockKey;
  }

  /** `swarm unlock`: a wrong key says so and leaves the manager locked. */
  async unlock(unlockKey: string): Promise<void> {
    if (!this.locked) throw new KeyManagerError('ERR_KEYMANAGER_NOT_LOCKED', 'this manager is not locked');
    if (this.state.kek.kind !== 'unlock-key') throw new KeyManagerError('ERR_KEYMANAGER_NOT_LOCKED', 'this manager is not locked');
    let secret: Uint8Array;
    try {
      secret = parseUnlockKey(unlockKey);
    } catch (err) {
      this.log.warn('unlock refused: malformed key');
      throw err;
    }
    const kek = kekFromUnlockKey(secret, unb64(this.state.kek.salt));
    this.openWith(kek, unlockKey.trim(), () => new InvalidUnlockKeyError("it does not open this manager's data encryption key; the manager stays locked"));
    this.log.info('manager unlocked');
    await this.reconcileTlsKeyFile();
  }

  /** Forgets the keys (swarm leave). */
  async destroy(): Promise<void> {
    await rm(this.file, { force: true });
    this.kek = this.dekNow = this.pending = this.tlsPass = null;
  }

  // ------------------------------------------------------------------------------- reads

  get locked(): boolean {
    return this.dekNow === null;
  }

  get autolock(): boolean {
    return this.state.kek.kind === 'unlock-key';
  }

  status(): KeyManagerStatus {
    return { locked: this.locked, autolock: this.autolock, dekRotations: this.state.dekRotations, rotationPending: this.state.pendingDek !== undefined };
  }

  /** The current DEK (a copy). Throws LockedError while locked. */
  dek(): Uint8Array {
    if (this.dekNow === null) throw new LockedError();
    return new Uint8Array(this.dekNow);
  }

  /** The unlock key this manager was unlocked or set up with (null without autolock, or while locked). */
  get unlockKey(): string | null {
    return this.unlockKeyNow;
  }

  /**
   * Opens the Raft log (or anything sealed under the DEK): with the current DEK, else — after a
   * crash in the middle of a rotation — with the pending one, which is then promoted. Any error
   * other than a wrong key (`ERR_RAFT_WRONG_KEY`) is passed through.
   */
  async withDek<T>(open: (dek: Uint8Array) => Promise<T>): Promise<T> {
    const dek = this.dek();
    try {
      return await open(dek);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ERR_RAFT_WRONG_KEY' || this.pending === null) throw err;
      const pending = this.pending;
      const result = await open(new Uint8Array(pending));
      await this.serial(async () => {
        this.log.warn('the log was sealed under the pending DEK (a rotation was interrupted): promoting it');
        await this.commitDek(pending);
      });
      return result;
    }
  }

  /** Resolves once the key changes queued so far (rotation, autolock) are done. */
  async idle(): Promise<void> {
    await this.chain;
  }

  // ------------------------------------------------------------------------------ changes

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async writeState(state: KeysFile): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(state, null, 2));
    this.state = state;
  }

  private async commitDek(dek: Uint8Array): Promise<void> {
    const { pendingDek: _p, ...rest } = this.state;
    await this.writeState({ ...rest, dek: b64(wrapKey(this.kek!, dek, 'raft-dek')), dekRotations: this.state.dekRotations + 1 });
    this.dekNow = dek;
    this.pending = null;
  }

  /**
   * A new DEK for new writes: stored as pending, handed to `apply` (which re-seals the log under
   * it), then made current. If `apply` fails the pending key is dropped and the old one stays.
   */
  rotateDek(apply: ApplyDek): Promise<Uint8Array> {
    return this.serial(() => this.rotateDekNow(apply));
  }

  private async rotateDekNow(apply: ApplyDek): Promise<Uint8Array> {
    if (this.kek === null) throw new LockedError();
    const next = newKey();
    await this.writeState({ ...this.state, pendingDek: b64(wrapKey(this.kek, next, 'raft-dek-pending')) });
    this.pending = next;
    try {
      await apply(new Uint8Array(next));
    } catch (err) {
      const { pendingDek: _p, ...rest } = this.state;
      await this.writeState(rest);
      this.pending = null;
      throw err;
    }
    await this.commitDek(next);
    this.log.info({ dekRotations: this.state.dekRotations }, 'data encryption key rotated');
    return new Uint8Array(next);
  }

  /**
   * Autolock on (a key), off (null), or a new unlock key: re-wraps the DEK (and the TLS key's
   * passphrase) under the new KEK in one atomic write, encrypts or decrypts the TLS key file,
   * and rotates the DEK when autolock flips (the old DEK was readable from the disk alone).
   * Ordering keeps every crash point openable: turning on writes the key file first (a plain TLS
   * key is still accepted and encrypted later), turning off decrypts the TLS key first.
   */
  setUnlockKey(unlockKey: string | null, apply: ApplyDek): Promise<void> {
    return this.serial(async () => {
      if (this.kek === null) throw new LockedError();
      const wanted = unlockKey === null ? null : unlockKey.trim();
      if (wanted === this.unlockKeyNow && (wanted === null) === !this.autolock) return;
      const wasAutolock = this.autolock;
      const { record, kek } = KeyManager.newKek(wanted);
      if (wanted === null) await this.writeTlsKeyPlain();
      const tlsPass = wanted === null ? null : (this.tlsPass ?? newKey());
      const { pendingDek: _p, tlsKeyPassphrase: _t, ...rest } = this.state;
      await this.writeState({
        ...rest,
        kek: record,
        dek: b64(wrapKey(kek, this.dekNow!, 'raft-dek')),
        ...(this.pending !== null ? { pendingDek: b64(wrapKey(kek, this.pending, 'raft-dek-pending')) } : {}),
        ...(tlsPass !== null ? { tlsKeyPassphrase: b64(wrapKey(kek, tlsPass, 'tls-key-passphrase')) } : {}),
      });
      this.kek = kek;
      this.tlsPass = tlsPass;
      this.unlockKeyNow = wanted;
      await this.reconcileTlsKeyFile();
      this.log.info({ autolock: wanted !== null, was: wasAutolock }, wanted === null ? 'autolock off' : 'unlock key set');
      if (wasAutolock !== (wanted !== null)) await this.rotateDekNow(apply);
    });
  }

  // ------------------------------------------------------------------------------ TLS key

  /** The node's TLS key as plain PKCS#8 PEM (decrypted under autolock; LockedError while locked). */
  async loadTlsKey(): Promise<string> {
    const file = this.tlsKeyFile();
    const pem = await readKeyFile(file);
    if (!isEncryptedKeyPem(pem)) return pem;
    if (this.locked) throw new LockedError();
    const plain = this.tlsPass === null ? null : decryptKeyPem(pem, this.tlsPass);
    if (plain === null) throw new KeyManagerError('ERR_KEYMANAGER_CORRUPT', `${file} is encrypted with a key this manager does not hold`);
    return plain;
  }

  /** Writes a (renewed) TLS key: encrypted under autolock, plain otherwise; 0600, atomic. */
  async storeTlsKey(plainPem: string): Promise<void> {
    if (this.autolock && this.tlsPass === null) throw new LockedError();
    await writeKeyFile(this.tlsKeyFile(), plainPem, this.autolock ? this.tlsPass : null);
  }

  private tlsKeyFile(): string {
    if (this.opts.tlsKeyFile === undefined) throw new KeyManagerError('ERR_KEYMANAGER_NOT_INITIALIZED', 'no TLS key file was configured for this key manager (tlsKeyFile)');
    return this.opts.tlsKeyFile;
  }

  private async writeTlsKeyPlain(): Promise<void> {
    if (this.opts.tlsKeyFile === undefined) return;
    const pem = await this.loadTlsKey().catch((err: unknown) => ((err as { code?: unknown }).code === 'ERR_KEYMANAGER_NOT_INITIALIZED' ? null : Promise.reject(err)));
    if (pem !== null && isEncryptedKeyPem(await readKeyFile(this.opts.tlsKeyFile))) await writeKeyFile(this.opts.tlsKeyFile, pem, null);
  }

  /** Brings the TLS key file in line with autolock (after a crash between the two files, too). */
  private async reconcileTlsKeyFile(): Promise<void> {
    const file = this.opts.tlsKeyFile;
    if (file === undefined || this.locked) return;
    let pem: string;
    try {
      pem = await readKeyFile(file);
    } catch {
      return; // no key file yet (it is written after the keys at join)
    }
    const encrypted = isEncryptedKeyPem(pem);
    if (this.autolock && !encrypted) await writeKeyFile(file, pem, this.tlsPass);
    if (!this.autolock && encrypted) await this.writeTlsKeyPlain();
  }
}

/** The plain DEK file of the older FileDekSource (manager/dek.ts), taken over at restart. */
const LEGACY_DEK_FILE = 'raft-dek.key';

/**
 * The runtime's DekSource (manager/dek.ts) over a KeyManager directory, the default of
 * `ManagerBaseOptions.dekSource`: `load()` of a locked manager throws LockedError, `load(key)`
 * unlocks it (InvalidUnlockKeyError for a wrong key, still locked); `withDek` opens the log with
 * the pending DEK after a crash mid-rotation; `loadTlsKey` decrypts the node's key under autolock;
 * `start` follows the cluster's autolock setting while the manager runs.
 */
export class KeyManagerDekSource implements DekSource {
  private km: KeyManager | null = null;
  private rotateLogKey: ((dek: Uint8Array) => Promise<void>) | null = null;

  constructor(
    private readonly dir: string,
    private readonly opts: KeyManagerOptions = {},
  ) {}

  get keyManager(): KeyManager | null {
    return this.km;
  }

  async create(): Promise<Uint8Array> {
    this.km = await KeyManager.create(this.dir, this.opts);
    return this.km.dek();
  }

  async load(unlockKey?: string): Promise<Uint8Array> {
    this.km ??= await this.openOrTakeOver();
    if (this.km.locked && unlockKey !== undefined) await this.km.unlock(unlockKey);
    return this.km.dek();
  }

  /** Opens the key file; a data root of the older plain-DEK source gets one wrapping that DEK. */
  private async openOrTakeOver(): Promise<KeyManager> {
    try {
      return await KeyManager.open(this.dir, this.opts);
    } catch (err) {
      if (!(err instanceof KeyManagerError) || err.code !== 'ERR_KEYMANAGER_NOT_INITIALIZED') throw err;
      const legacy = path.join(this.dir, LEGACY_DEK_FILE);
      const dek = await readFile(legacy).catch(() => null);
      if (dek === null || dek.byteLength !== KEY_BYTES) throw err;
      const km = await KeyManager.create(this.dir, { ...this.opts, dek: new Uint8Array(dek) });
      await rm(legacy, { force: true });
      return km;
    }
  }

  /**
   * Waits (bounded) until this manager's keys follow `autolock` and no key change is running —
   * so `swarm init --autolock` / `swarm update --autolock` answer once a restart would be locked.
   * False when the time ran out (the sync carries on in the background).
   */
  async settled(autolock: boolean, timeoutMs = 10_000): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (let i = 0; i < timeoutMs / 10 + 1; i++) {
      const km = this.km;
      if (km !== null && !km.locked && km.autolock === autolock) {
        await km.idle();
        if (km.autolock === autolock) return true;
      }
      if (performance.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  withDek<T>(open: (dek: Uint8Array) => Promise<T>): Promise<T> {
    if (this.km === null) throw new LockedError();
    return this.km.withDek(open);
  }

  async loadTlsKey(): Promise<string> {
    if (this.km === null) throw new LockedError();
    return this.km.loadTlsKey();
  }

  start(ctx: KeyRuntimeContext): KeyRuntime {
    if (this.km === null) throw new LockedError();
    const sync = watchClusterKeys(ctx.store, this.km, ctx.rotateLogKey, ctx.logger.child({ component: 'keymanager' }));
    this.rotateLogKey = ctx.rotateLogKey;
    return {
      stop: async () => {
        this.rotateLogKey = null;
        sync.stop();
        await sync.done;
      },
    };
  }

  /** Rotates the DEK of the running manager: the log is re-sealed under a new one (when asked). */
  async rotateDek(): Promise<void> {
    const apply = this.rotateLogKey;
    if (this.km === null || apply === null) throw new KeyManagerError('ERR_KEYMANAGER_NOT_INITIALIZED', 'the manager is not running: its data encryption key can only rotate while it runs');
    await this.km.rotateDek(apply);
  }

  async destroy(): Promise<void> {
    if (this.km !== null) await this.km.destroy();
    else await rm(path.join(this.dir, KEYS_FILE), { force: true });
    await rm(path.join(this.dir, LEGACY_DEK_FILE), { force: true });
  }
}
