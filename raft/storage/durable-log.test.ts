import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Level } from 'level';
import { pino } from 'pino';
import type { Entry, HardState } from '../types.js';
import { CorruptionError, DurableLog, StorageError, WrongKeyError } from './index.js';
import { entryIndex, entryKey, KEY_HARD_STATE, KEY_SNAPSHOT } from './keys.js';

const logger = pino({ level: 'silent' });

function ent(index: number, term: number, tag = 0): Entry {
  const data = new Uint8Array(16 + (index % 7));
  data.fill((index * 31 + tag) & 0xff);
  return { index, term, type: index % 5 === 0 ? 'conf' : 'normal', data };
}

function range(lo: number, hi: number, term: number, tag = 0): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(ent(i, term, tag));
  return out;
}

const hs = (term: number, commit: number, vote: HardState['vote'] = 1): HardState => ({ term, vote, commit });

describe('DurableLog', () => {
  let dir: string;
  let dek: Buffer;
  const open: DurableLog[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-raft-log-'));
    dek = randomBytes(32);
  });
  afterEach(async () => {
    for (const l of open.splice(0)) await l.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function openLog(key: Uint8Array = dek): Promise<DurableLog> {
    const l = await DurableLog.open(dir, { dek: key, logger });
    open.push(l);
    return l;
  }

  async function closeLog(l: DurableLog): Promise<void> {
    open.splice(open.indexOf(l), 1);
    await l.close();
  }

  /** Opens the LevelDB underneath directly, as an attacker or a disk fault would. */
  async function raw<T>(f: (db: Level<Uint8Array, Uint8Array>) => Promise<T>): Promise<T> {
    const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      return await f(db);
    } finally {
      await db.close();
    }
  }

  async function storedIndexes(): Promise<number[]> {
    return raw(async (db) => {
      const out: number[] = [];
      for await (const k of db.keys()) {
        const i = entryIndex(k);
        if (i !== null) out.push(i);
      }
      return out;
    });
  }

  async function openError(key: Uint8Array = dek): Promise<Error> {
    try {
      const l = await openLog(key);
      await closeLog(l);
    } catch (e) {
      return e as Error;
    }
    throw new Error('expected open to fail');
  }

  it('a fresh log is empty', async () => {
    const l = await openLog();
    expect(l.memory.firstIndex()).toBe(1);
    expect(l.memory.lastIndex()).toBe(0);
    expect(l.memory.initialState().hardState).toEqual({ term: 0, vote: null, commit: 0 });
  });

  it('entries and hard state survive close and reopen', async () => {
    let l = await openLog();
    await l.save({ hardState: hs(1, 0), entries: range(1, 3, 1), snapshot: null, mustSync: true });
    await l.save({ hardState: hs(2, 5, 'node-b'), entries: range(4, 10, 2), snapshot: null, mustSync: true });
    await l.save({ hardState: hs(2, 8, 'node-b'), entries: [], snapshot: null, mustSync: false });
    expect(l.memory.lastIndex()).toBe(10);
    await closeLog(l);

    l = await openLog();
    expect(l.memory.firstIndex()).toBe(1);
    expect(l.memory.lastIndex()).toBe(10);
    expect(l.memory.entries(1, 11, Infinity)).toEqual([...range(1, 3, 1), ...range(4, 10, 2)]);
    expect(l.memory.initialState().hardState).toEqual(hs(2, 8, 'node-b'));
    expect(l.memory.term(0)).toBe(0);
  });

  it('a conflicting append truncates the stored log, on disk too', async () => {
    let l = await openLog();
    await l.save({ hardState: hs(1, 3), entries: range(1, 10, 1), snapshot: null, mustSync: true });
    await l.save({ hardState: hs(2, 3), entries: range(6, 7, 2, 9), snapshot: null, mustSync: true });
    expect(l.memory.lastIndex()).toBe(7);
    expect(l.memory.term(6)).toBe(2);
    await closeLog(l);
    expect(await storedIndexes()).toEqual([1, 2, 3, 4, 5, 6, 7]);

    l = await openLog();
    expect(l.memory.lastIndex()).toBe(7);
    expect(l.memory.entries(1, 8, Infinity)).toEqual([...range(1, 5, 1), ...range(6, 7, 2, 9)]);
    // A longer overwrite in the middle replaces the tail and extends it.
    await l.save({ hardState: null, entries: range(4, 12, 3), snapshot: null, mustSync: true });
    await closeLog(l);
    l = await openLog();
    expect(l.memory.entries(1, 13, Infinity)).toEqual([...range(1, 3, 1), ...range(4, 12, 3)]);
  });

  it('refuses a batch that would leave a gap or a commit past the log, writing nothing', async () => {
    const l = await openLog();
    await l.save({ hardState: null, entries: range(1, 3, 1), snapshot: null, mustSync: true });
    await expect(l.save({ hardState: null, entries: range(5, 6, 1), snapshot: null, mustSync: true })).rejects.toThrow(
      /entries starting at 5 would leave a gap after the last index 3/,
    );
    await expect(l.save({ hardState: null, entries: [ent(4, 1), ent(6, 1)], snapshot: null, mustSync: true })).rejects.toThrow(
      /not contiguous: 6 follows 4/,
    );
    await expect(l.save({ hardState: hs(1, 9), entries: [ent(4, 1)], snapshot: null, mustSync: true })).rejects.toThrow(
      StorageError,
    );
    expect(l.memory.lastIndex()).toBe(3);
    expect(l.memory.hard().commit).toBe(0);
    // The log is still usable: a refused request is not a failed write.
    await l.save({ hardState: hs(1, 4), entries: [ent(4, 1)], snapshot: null, mustSync: true });
    expect(l.memory.lastIndex()).toBe(4);
  });

  it("the app's snapshot and compaction persist; compaction cannot pass the snapshot", async () => {
    let l = await openLog();
    await l.save({ hardState: hs(3, 20), entries: [...range(1, 12, 2), ...range(13, 20, 3)], snapshot: null, mustSync: true });
    const confState = { voters: [1, 2, 3], learners: ['x'] };
    const snap = await l.createSnapshot(15, confState, Buffer.from('state at 15'));
    expect(snap.metadata).toEqual({ index: 15, term: 3, confState });
    await expect(l.compact(16)).rejects.toThrow(/cannot compact to 16, past the snapshot at 15/);
    await l.compact(15);
    expect(l.memory.firstIndex()).toBe(16);
    expect(l.memory.term(15)).toBe(3);
    // An older snapshot request returns the current one.
    expect((await l.createSnapshot(10, confState, new Uint8Array(1))).metadata.index).toBe(15);
    await closeLog(l);
    expect(await storedIndexes()).toEqual([15, 16, 17, 18, 19, 20]);

    l = await openLog();
    expect(l.memory.snapshot().metadata).toEqual({ index: 15, term: 3, confState });
    expect(Buffer.from(l.memory.snapshot().data).toString()).toBe('state at 15');
    expect(l.memory.initialState().confState).toEqual(confState);
    expect(l.memory.firstIndex()).toBe(16);
    expect(l.memory.lastIndex()).toBe(20);
    expect(l.memory.entries(16, 21, Infinity)).toEqual(range(16, 20, 3));
    // The leftover boundary entry 15 goes with the next compaction.
    await l.createSnapshot(18, confState, Buffer.from('state at 18'));
    await l.compact(18);
    await closeLog(l);
    expect(await storedIndexes()).toEqual([18, 19, 20]);
  });

  it("a leader's snapshot replaces the whole log", async () => {
    let l = await openLog();
    await l.save({ hardState: hs(1, 2), entries: range(1, 5, 1), snapshot: null, mustSync: true });
    const snapshot = { metadata: { index: 100, term: 4, confState: { voters: [1, 2], learners: [] } }, data: Buffer.from('big') };
    await l.save({ hardState: hs(4, 100), entries: range(99, 102, 4), snapshot, mustSync: true });
    expect(l.memory.firstIndex()).toBe(101);
    expect(l.memory.lastIndex()).toBe(102);
    await closeLog(l);
    expect(await storedIndexes()).toEqual([101, 102]);
    l = await openLog();
    expect(l.memory.snapshot().metadata.index).toBe(100);
    expect(l.memory.entries(101, 103, Infinity)).toEqual(range(101, 102, 4));
    expect(l.memory.hard()).toEqual(hs(4, 100));
    // A stale snapshot in a later Ready is ignored.
    await l.save({ hardState: null, entries: [], snapshot: { ...snapshot, metadata: { ...snapshot.metadata, index: 50 } }, mustSync: true });
    expect(l.memory.snapshot().metadata.index).toBe(100);
  });

  it('calls run in call order even when not awaited one by one', async () => {
    const l = await openLog();
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 20; i++) saves.push(l.save({ hardState: hs(1, i - 1), entries: [ent(i, 1)], snapshot: null, mustSync: i % 2 === 0 }));
    await Promise.all(saves);
    expect(l.memory.lastIndex()).toBe(20);
    expect(l.memory.hard().commit).toBe(19);
  });

  describe('detects tampering and damage on open, naming the record', () => {
    async function seeded(): Promise<void> {
      const l = await openLog();
      await l.save({ hardState: hs(2, 4), entries: range(1, 6, 2), snapshot: null, mustSync: true });
      await l.createSnapshot(2, { voters: [1], learners: [] }, Buffer.from('snap'));
      await closeLog(l);
    }

    it('a flipped byte in an entry', async () => {
      await seeded();
      await raw(async (db) => {
        const v = Buffer.from((await db.get(entryKey(4)))!);
        v[v.byteLength >> 1]! ^= 0x01;
        await db.put(entryKey(4), v);
      });
      const err = await openError();
      expect(err).toBeInstanceOf(CorruptionError);
      expect(err).toMatchObject({ code: 'ERR_RAFT_CORRUPT', record: 'entry', index: 4 });
      expect(err.message).toMatch(/entry 4 is corrupt: authentication failed/);
    });

    it('an entry copied over another index', async () => {
      await seeded();
      await raw(async (db) => db.put(entryKey(5), (await db.get(entryKey(3)))!));
      expect(await openError()).toMatchObject({ code: 'ERR_RAFT_CORRUPT', index: 5 });
    });

    it('a torn (truncated) entry value', async () => {
      await seeded();
      await raw(async (db) => db.put(entryKey(6), (await db.get(entryKey(6)))!.subarray(0, 10)));
      const err = await openError();
      expect(err).toMatchObject({ code: 'ERR_RAFT_CORRUPT', index: 6 });
      expect(err.message).toMatch(/torn or truncated/);
    });

    it('a missing entry in the middle', async () => {
      await seeded();
      await raw(async (db) => db.del(entryKey(4)));
      const err = await openError();
      expect(err).toMatchObject({ code: 'ERR_RAFT_CORRUPT', index: 4 });
      expect(err.message).toMatch(/entry 4 is missing \(the next stored entry is 5\)/);
    });

    it('a flipped byte in the hard state or the snapshot', async () => {
      await seeded();
      const flip = async (key: Uint8Array) =>
        raw(async (db) => {
          const v = Buffer.from((await db.get(key))!);
          v[v.byteLength - 1]! ^= 0x80;
          await db.put(key, v);
        });
      await flip(KEY_HARD_STATE);
      expect(await openError()).toMatchObject({ code: 'ERR_RAFT_CORRUPT', record: 'hardState', index: null });
      await flip(KEY_HARD_STATE);
      await flip(KEY_SNAPSHOT);
      expect(await openError()).toMatchObject({ code: 'ERR_RAFT_CORRUPT', record: 'snapshot' });
      await flip(KEY_SNAPSHOT);
      // Restored: it opens again.
      const l = await openLog();
      expect(l.memory.lastIndex()).toBe(6);
    });

    it('the hard state swapped into the snapshot slot', async () => {
      await seeded();
      await raw(async (db) => db.put(KEY_SNAPSHOT, (await db.get(KEY_HARD_STATE))!));
      expect(await openError()).toMatchObject({ code: 'ERR_RAFT_CORRUPT', record: 'snapshot' });
    });
  });

  it('a wrong key is told apart from corruption; rotateKey re-seals under a new key', async () => {
    let l = await openLog();
    await l.save({ hardState: hs(1, 3), entries: range(1, 3, 1), snapshot: null, mustSync: true });
    await closeLog(l);
    const err = await openError(randomBytes(32));
    expect(err).toBeInstanceOf(WrongKeyError);
    expect(err).toMatchObject({ code: 'ERR_RAFT_WRONG_KEY' });
    await expect(DurableLog.open(dir, { dek: new Uint8Array(16), logger })).rejects.toThrow(/must be 32 bytes, got 16/);

    l = await openLog();
    const next = randomBytes(32);
    await l.rotateKey(next);
    await l.save({ hardState: hs(1, 4), entries: [ent(4, 1)], snapshot: null, mustSync: true });
    await closeLog(l);
    expect(await openError(dek)).toBeInstanceOf(WrongKeyError);
    l = await openLog(next);
    expect(l.memory.entries(1, 5, Infinity)).toEqual(range(1, 4, 1));
  });

  it('refuses use after close', async () => {
    const l = await openLog();
    await closeLog(l);
    await expect(l.save({ hardState: null, entries: [ent(1, 1)], snapshot: null, mustSync: true })).rejects.toThrow(/save after close/);
    await l.close(); // idempotent
  });
});
