// The durable Raft log: snapshot, hard state and entries in LevelDB, every record sealed with
// AES-256-GCM under the caller's data-encryption key (DEK). It keeps a MemoryStorage in step
// with what is on disk; the Raft core reads that view and never touches the disk itself.
//
// Rules this file holds to:
// - One Ready = one LevelDB write batch = (when mustSync) one fsync. The batch is atomic, so a
//   crash leaves either all of a Ready or none of it; LevelDB's own write-ahead log checksums
//   catch a torn tail.
// - Memory changes only after the disk write resolved: the core never sees what is not durable.
// - Calls run one at a time, in call order (an internal queue), because each batch is computed
//   from the state the previous one left.
// - After a failed write the log refuses further use: after a failed fsync the kernel's page
//   cache may no longer say what the disk holds, so continuing could acknowledge lost data.
import type { KeyObject } from 'node:crypto';
import { Level } from 'level';
import { pino, type Logger } from 'pino';
import { CodecError, decodeEntry, decodeHardState, decodeSnapshot, encodeEntry, encodeHardState, encodeSnapshot } from '../codec.js';
import { MemoryStorage } from '../log-storage.js';
import type { ConfState, Entry, HardState, Snapshot } from '../types.js';
import { CorruptionError, StorageError, WrongKeyError, type RecordKind } from './errors.js';
import { ENTRIES_GTE, ENTRIES_LT, KEY_CHECK, KEY_HARD_STATE, KEY_SNAPSHOT, entryIndex, entryKey } from './keys.js';
import { randomPool } from './random-pool.js';
import { DEK_BYTES, NONCE_BYTES, describeOpenFailure, open as openSealed, seal, sealingKey } from './seal.js';

export interface DurableLogOptions {
  /** 32-byte AES-256 data-encryption key. The log keeps its own copy. */
  readonly dek: Uint8Array;
  readonly logger?: Logger;
}

/** What one Ready asks to persist (the fields of raft/types.ts Ready that go to disk). */
export interface SaveRequest {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  /** fsync before resolving. False only when nothing the core promised others changed (e.g. commit only). */
  readonly mustSync: boolean;
}

type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };
type Db = Level<Uint8Array, Uint8Array>;

const KEY_CHECK_PLAINTEXT = Buffer.from('shoal raft log key check v1', 'utf8');

export class DurableLog {
  /** The in-memory view of what is durable; pass it to the Raft core as its LogStorage. */
  readonly memory: MemoryStorage;

  private dek: Buffer;
  /** The DEK as a KeyObject, made once: every record's cipher uses it (see seal.ts). */
  private key: KeyObject;
  /** Lowest and highest entry index on disk; null when there are none. May include entries ≤ the snapshot. */
  private diskFirst: number | null;
  private diskLast: number | null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Deletions of compacted entries still running (see compact()). */
  private clearing: Promise<void> = Promise.resolve();
  private failed: Error | null = null;
  private closed = false;

  private constructor(
    private readonly db: Db,
    readonly dir: string,
    dek: Buffer,
    private readonly logger: Logger,
    loaded: Loaded,
  ) {
    this.dek = dek;
    this.key = sealingKey(dek);
    this.memory = loaded.memory;
    this.diskFirst = loaded.diskFirst;
    this.diskLast = loaded.diskLast;
  }

  /**
   * Opens (creating if needed) the log in `dir` and loads snapshot, hard state and the entries
   * after the snapshot into `memory`. Throws WrongKeyError for a key that does not open the
   * log and CorruptionError (naming the index) for a record that fails to authenticate or
   * decode, or a gap in the entries.
   */
  static async open(dir: string, opts: DurableLogOptions): Promise<DurableLog> {
    const dek = checkDek(opts.dek);
    const logger = (opts.logger ?? pino({ name: 'raft-storage', level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' })).child({
      component: 'raft-storage',
      dir,
    });
    const db: Db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (err) {
      throw new StorageError(`raft log ${dir}: cannot open the database: ${errMessage(err)}`, { cause: err });
    }
    try {
      const started = performance.now();
      const loaded = await load(db, dir, dek);
      logger.info(
        {
          snapshotIndex: loaded.memory.snapshot().metadata.index,
          firstIndex: loaded.memory.firstIndex(),
          lastIndex: loaded.memory.lastIndex(),
          commit: loaded.memory.hard().commit,
          loadMs: Math.round(performance.now() - started),
        },
        'raft log opened',
      );
      return new DurableLog(db, dir, dek, logger, loaded);
    } catch (err) {
      await db.close().catch(() => undefined);
      if (err instanceof CorruptionError) logger.error({ err, index: err.index, record: err.record }, 'raft log is corrupt');
      throw err;
    }
  }

  /**
   * Persists one Ready: the snapshot (dropping every stored entry), then the entries
   * (deleting stored entries at and after the first one's index), then the hard state — in
   * one atomic batch, fsynced when `mustSync`. Updates `memory` once the batch is durable.
   */
  save(rd: SaveRequest): Promise<void> {
    return this.serial('save', async () => {
      const snapIndex = this.memory.snapshot().metadata.index;
      const snap = rd.snapshot !== null && rd.snapshot.metadata.index > snapIndex ? rd.snapshot : null;
      const baseIndex = snap !== null ? snap.metadata.index : snapIndex;
      const baseLast = snap !== null ? snap.metadata.index : this.memory.lastIndex();
      const entries = dropCovered(rd.entries, baseIndex);
      checkContiguous(entries, baseLast, this.dir);

      const ops: BatchOp[] = [];
      let diskFirst = this.diskFirst;
      let diskLast = this.diskLast;
      if (snap !== null) {
        ops.push({ type: 'put', key: KEY_SNAPSHOT, value: this.sealRecord(KEY_SNAPSHOT, encodeSnapshot(snap)) });
        // A snapshot from the leader replaces the whole log, as MemoryStorage.applySnapshot does.
        if (diskFirst !== null && diskLast !== null) for (let i = diskFirst; i <= diskLast; i++) ops.push({ type: 'del', key: entryKey(i) });
        diskFirst = diskLast = null;
      }
      if (entries.length > 0) {
        const first = entries[0]!.index;
        const last = entries[entries.length - 1]!.index;
        // Truncation: stored entries after the new last one go; those in [first, last] are overwritten.
        if (diskLast !== null) for (let i = Math.max(first, last + 1); i <= diskLast; i++) ops.push({ type: 'del', key: entryKey(i) });
        const nonces = randomPool.bytes(NONCE_BYTES * entries.length);
        for (let j = 0; j < entries.length; j++) {
          const e = entries[j]!;
          const key = entryKey(e.index);
          ops.push({ type: 'put', key, value: seal(this.key, nonces.subarray(j * NONCE_BYTES, (j + 1) * NONCE_BYTES), key, encodeEntry(e)) });
        }
        diskFirst = diskFirst === null ? first : Math.min(diskFirst, first);
        diskLast = last;
      }
      if (rd.hardState !== null) {
        // What save accepts, open must accept: a commit past the log would refuse to load.
        const newLast = entries.length > 0 ? entries[entries.length - 1]!.index : baseLast;
        if (rd.hardState.commit > newLast) {
          throw new StorageError(`raft log ${this.dir}: hard state commit ${rd.hardState.commit} is past the last index ${newLast}`);
        }
        ops.push({ type: 'put', key: KEY_HARD_STATE, value: this.sealRecord(KEY_HARD_STATE, encodeHardState(rd.hardState)) });
      }
      if (ops.length === 0) return;

      await this.write(ops, rd.mustSync);
      this.diskFirst = diskFirst;
      this.diskLast = diskLast;
      if (snap !== null) this.memory.applySnapshot(snap);
      this.memory.append(entries);
      if (rd.hardState !== null) this.memory.setHardState(rd.hardState);
    });
  }

  /**
   * Records the application's own snapshot at `index` (≤ applied) durably, then in memory.
   * Does not compact; call compact() after. Returns the stored snapshot (the existing one if
   * it is already at or past `index`).
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.serial('createSnapshot', async () => {
      const current = this.memory.snapshot();
      if (index <= current.metadata.index) return current;
      // term() throws CompactedError / UnavailableError for an index outside the log.
      const snap: Snapshot = { metadata: { index, term: this.memory.term(index), confState }, data };
      await this.write([{ type: 'put', key: KEY_SNAPSHOT, value: this.sealRecord(KEY_SNAPSHOT, encodeSnapshot(snap)) }], true);
      return this.memory.createSnapshot(index, confState, data);
    });
  }

  /**
   * Drops entries before `index` from memory at once and deletes them from disk in the
   * background (entry `index` stays as the memory view's boundary). `index` must not pass the
   * stored snapshot: entries after it are the only copy of what the snapshot does not cover.
   *
   * The deletion is a LevelDB range clear run on libuv's pool, not queued with the saves: the
   * main thread builds no batch of thousands of deletes and the next save does not wait for
   * it (a compaction of 10,000 entries stalled every write for ~30 ms). It touches only keys
   * below the snapshot, which no later save writes (saves drop entries the snapshot covers, and
   * a leader's snapshot has a higher index); open() ignores such entries, so a clear cut short
   * by a crash only leaves garbage that the next compaction after a restart deletes. close()
   * and rotateKey() wait for it.
   */
  compact(index: number): Promise<void> {
    return this.serial('compact', async () => {
      const snapIndex = this.memory.snapshot().metadata.index;
      if (index > snapIndex) {
        throw new StorageError(`raft log ${this.dir}: cannot compact to ${index}, past the snapshot at ${snapIndex}; create a snapshot first`);
      }
      if (this.diskFirst !== null && this.diskFirst < index) {
        const from = this.diskFirst;
        const end = Math.min(index - 1, this.diskLast!);
        this.clearing = this.clearing.then(() => this.clearEntries(from, end));
        this.diskFirst = end === this.diskLast ? null : end + 1;
        if (this.diskFirst === null) this.diskLast = null;
      }
      this.memory.compact(index);
    });
  }

  /** Deletes the stored entries [from, end]; a failure is logged (they stay as dead weight). */
  private async clearEntries(from: number, end: number): Promise<void> {
    try {
      await this.db.clear({ gte: entryKey(from), lte: entryKey(end) });
    } catch (err) {
      this.logger.warn({ err, from, end }, 'could not delete compacted entries; they stay on disk below the snapshot');
    }
  }

  /**
   * Re-seals every record under `newDek` in one synced batch; from then on only `newDek`
   * opens the log. The old key keeps opening it until the batch is durable.
   */
  rotateKey(newDek: Uint8Array): Promise<void> {
    return this.serial('rotateKey', async () => {
      const next = checkDek(newDek);
      const nextKey = sealingKey(next);
      // A clear still running could delete a key after the loop below re-sealed it (harmless
      // below the snapshot, but the re-sealed set would not be the stored set).
      await this.clearing;
      const ops: BatchOp[] = [];
      for await (const [key, value] of this.db.iterator()) {
        const plain = openSealed(this.key, key, value);
        if (typeof plain === 'string') throw corruptAt(this.dir, key, describeOpenFailure(plain, value.byteLength));
        ops.push({ type: 'put', key, value: seal(nextKey, randomPool.bytes(NONCE_BYTES), key, plain) });
      }
      await this.write(ops, true);
      this.dek.fill(0);
      this.dek = next;
      this.key = nextKey;
      this.logger.info({ records: ops.length }, 'raft log re-sealed under a new key');
    });
  }

  /** Waits for queued calls, then closes the database. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    await this.clearing;
    await this.db.close();
    this.dek.fill(0);
  }

  private sealRecord(key: Uint8Array, plain: Uint8Array): Buffer {
    return seal(this.key, randomPool.bytes(NONCE_BYTES), key, plain);
  }

  private async write(ops: BatchOp[], sync: boolean): Promise<void> {
    try {
      // A chained batch: measured here ~2.5× cheaper than the array form for a few hundred puts.
      const batch = this.db.batch();
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      await batch.write({ sync });
    } catch (err) {
      this.failed = new StorageError(`raft log ${this.dir}: write of ${ops.length} record(s) failed: ${errMessage(err)}`, { cause: err });
      this.logger.error({ err }, 'raft log write failed; the log refuses further writes');
      throw this.failed;
    }
  }

  private serial<T>(op: string, f: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StorageError(`raft log ${this.dir}: ${op} after close`));
    const run = async (): Promise<T> => {
      if (this.failed !== null) throw new StorageError(`raft log ${this.dir}: ${op} refused, the log failed earlier: ${this.failed.message}`);
      return f();
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }
}

// ---------------------------------------------------------------------------------------------

interface Loaded {
  readonly memory: MemoryStorage;
  readonly diskFirst: number | null;
  readonly diskLast: number | null;
}

async function load(db: Db, dir: string, rawDek: Buffer): Promise<Loaded> {
  const dek = sealingKey(rawDek);
  await checkKey(db, dir, dek);

  const memory = new MemoryStorage();
  const snapBytes = await openRecord(db, dir, dek, KEY_SNAPSHOT, 'snapshot');
  let snap: Snapshot | null = null;
  if (snapBytes !== null) {
    snap = decodeRecord(dir, 'snapshot', null, () => decodeSnapshot(snapBytes));
    memory.applySnapshot(snap);
  }
  const snapIndex = snap?.metadata.index ?? 0;
  let prevTerm = snap?.metadata.term ?? 0;

  let diskFirst: number | null = null;
  let diskLast: number | null = null;
  const entries: Entry[] = [];
  for await (const [key, value] of db.iterator({ gte: ENTRIES_GTE, lt: ENTRIES_LT })) {
    const index = entryIndex(key);
    if (index === null) throw new CorruptionError(dir, 'entry', null, `malformed entry key ${Buffer.from(key).toString('hex')}`);
    diskFirst ??= index;
    diskLast = index;
    // Entries the snapshot covers are dead weight until the next compact(); they are not read.
    if (index <= snapIndex) continue;
    const expected = snapIndex + entries.length + 1;
    if (index !== expected) {
      throw new CorruptionError(dir, 'entry', expected, `entry ${expected} is missing (the next stored entry is ${index})`);
    }
    const plain = openSealed(dek, key, value);
    if (typeof plain === 'string') throw new CorruptionError(dir, 'entry', index, describeOpenFailure(plain, value.byteLength));
    const e = decodeRecord(dir, 'entry', index, () => decodeEntry(plain));
    if (e.index !== index) throw new CorruptionError(dir, 'entry', index, `record holds index ${e.index}`);
    if (e.term < prevTerm) throw new CorruptionError(dir, 'entry', index, `term ${e.term} is below the previous term ${prevTerm}`);
    prevTerm = e.term;
    entries.push(e);
  }
  memory.append(entries);

  const hsBytes = await openRecord(db, dir, dek, KEY_HARD_STATE, 'hardState');
  if (hsBytes !== null) {
    const hs = decodeRecord(dir, 'hardState', null, () => decodeHardState(hsBytes));
    if (hs.commit > memory.lastIndex()) {
      throw new CorruptionError(dir, 'hardState', null, `commit ${hs.commit} is past the last stored index ${memory.lastIndex()} (entries lost)`);
    }
    memory.setHardState(hs);
  }
  return { memory, diskFirst, diskLast };
}

/** Tells a wrong key from damage: a fresh log gets a key-check record sealed under its first key. */
async function checkKey(db: Db, dir: string, dek: KeyObject): Promise<void> {
  const stored = await db.get(KEY_CHECK);
  if (stored === undefined) {
    for await (const _ of db.keys({ limit: 1 })) {
      throw new CorruptionError(dir, 'keyCheck', null, 'the key-check record is missing from a non-empty log');
    }
    await db.put(KEY_CHECK, seal(dek, randomPool.bytes(NONCE_BYTES), KEY_CHECK, KEY_CHECK_PLAINTEXT), { sync: true });
    return;
  }
  const plain = openSealed(dek, KEY_CHECK, stored);
  if (plain === 'auth') throw new WrongKeyError(dir);
  if (typeof plain === 'string') throw new CorruptionError(dir, 'keyCheck', null, describeOpenFailure(plain, stored.byteLength));
  if (!plain.equals(KEY_CHECK_PLAINTEXT)) throw new CorruptionError(dir, 'keyCheck', null, 'unexpected content');
}

async function openRecord(db: Db, dir: string, dek: KeyObject, key: Uint8Array, kind: RecordKind): Promise<Buffer | null> {
  const v = await db.get(key);
  if (v === undefined) return null;
  const plain = openSealed(dek, key, v);
  if (typeof plain === 'string') throw new CorruptionError(dir, kind, null, describeOpenFailure(plain, v.byteLength));
  return plain;
}

function decodeRecord<T>(dir: string, kind: RecordKind, index: number | null, f: () => T): T {
  try {
    return f();
  } catch (err) {
    // Authenticated but undecodable: written by a different format version, or a bug.
    if (err instanceof CodecError) throw new CorruptionError(dir, kind, index, err.message, { cause: err });
    throw err;
  }
}

function corruptAt(dir: string, key: Uint8Array, reason: string): CorruptionError {
  const index = entryIndex(key);
  if (index !== null) return new CorruptionError(dir, 'entry', index, reason);
  const kind: RecordKind = key[0] === KEY_HARD_STATE[0] ? 'hardState' : key[0] === KEY_SNAPSHOT[0] ? 'snapshot' : 'keyCheck';
  return new CorruptionError(dir, kind, null, reason);
}

function dropCovered(entries: readonly Entry[], snapIndex: number): readonly Entry[] {
  if (entries.length === 0 || entries[0]!.index > snapIndex) return entries;
  return entries.filter((e) => e.index > snapIndex);
}

/** Refuses, before anything is written, a batch that is not contiguous or leaves a gap. */
function checkContiguous(entries: readonly Entry[], lastIndex: number, dir: string): void {
  if (entries.length === 0) return;
  const first = entries[0]!.index;
  if (first > lastIndex + 1) {
    throw new StorageError(`raft log ${dir}: entries starting at ${first} would leave a gap after the last index ${lastIndex}`);
  }
  for (let j = 1; j < entries.length; j++) {
    if (entries[j]!.index !== first + j) {
      throw new StorageError(`raft log ${dir}: entries are not contiguous: ${entries[j]!.index} follows ${entries[j - 1]!.index}`);
    }
  }
}

function checkDek(dek: Uint8Array): Buffer {
  if (!(dek instanceof Uint8Array) || dek.byteLength !== DEK_BYTES) {
    throw new StorageError(`raft log: the data-encryption key must be ${DEK_BYTES} bytes, got ${dek?.byteLength ?? typeof dek}`);
  }
  return Buffer.from(dek); // own copy, zeroed on close
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
