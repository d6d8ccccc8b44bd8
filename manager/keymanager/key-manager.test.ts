// The key manager over real files and a real DurableLog (LevelDB) in temp dirs: what an operator
// sees after a restart, a wrong key, a rotation, autolock changes, a crash between writes.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { DurableLog } from '../../raft/storage/index.js';
import type { Entry } from '../../raft/types.js';
import { ControlApi } from '../controlapi/control-api.js';
import { StoreCluster, waitFor } from '../store/testing/cluster.js';
import { watchClusterKeys } from './cluster-sync.js';
import { KeyManagerError, LOCKED_MESSAGE } from './errors.js';
import { KEYS_FILE, KeyManager } from './key-manager.js';
import { generateUnlockKey } from './unlock-key.js';

const logger = pino({ level: 'silent' });
const CANARY = 'keymanager-canary-7d1e';

function entry(index: number): Entry {
  return { index, term: 1, type: 'normal', data: new TextEncoder().encode(`${CANARY}-${index}`) };
}

async function writeEntries(log: DurableLog, from: number, to: number): Promise<void> {
  const entries: Entry[] = [];
  for (let i = from; i <= to; i++) entries.push(entry(i));
  await log.save({ hardState: { term: 1, vote: 1, commit: to }, entries, snapshot: null, mustSync: true });
}

function texts(log: DurableLog): string[] {
  return log.memory.entries(log.memory.firstIndex(), log.memory.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => new TextDecoder().decode(e.data));
}

/** Every file under `dir`, recursively, as raw bytes. */
async function allBytes(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const name of await readdir(dir, { recursive: true })) {
    const p = path.join(dir, name);
    if ((await stat(p)).isFile()) out.push(await readFile(p));
  }
  return out;
}

function tlsKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function refusal(p: Promise<unknown> | (() => unknown)): Promise<KeyManagerError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(KeyManagerError);
    return err as KeyManagerError;
  }
  throw new Error('expected a refusal, the call succeeded');
}

describe('KeyManager', () => {
  let dir: string;
  let keysDir: string;
  let logDir: string;
  let tlsFile: string;
  let tlsPem: string;
  const logs: DurableLog[] = [];

  async function openLog(dek: Uint8Array): Promise<DurableLog> {
    const log = await DurableLog.open(logDir, { dek, logger });
    logs.push(log);
    return log;
  }
  async function closeLog(log: DurableLog): Promise<void> {
    logs.splice(logs.indexOf(log), 1);
    await log.close();
  }

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'shoal-keymanager-'));
    keysDir = path.join(dir, 'state');
    logDir = path.join(dir, 'raft');
    tlsFile = path.join(keysDir, 'swarm-node.key');
    await mkdir(keysDir);
    tlsPem = tlsKeyPem();
    await writeFile(tlsFile, tlsPem, { mode: 0o600 });
  });
  afterEach(async () => {
    for (const l of logs.splice(0)) await l.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('with autolock nothing on disk opens without the key: no DEK, no KEK, no plain TLS key, no canary', async () => {
    const unlockKey = generateUnlockKey();
    const km = await KeyManager.create(keysDir, { unlockKey, tlsKeyFile: tlsFile, logger });
    const dek = km.dek();
    const log = await openLog(dek);
    await writeEntries(log, 1, 20);
    await closeLog(log);

    expect((await stat(path.join(keysDir, KEYS_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(tlsFile)).mode & 0o777).toBe(0o600);
    const tlsOnDisk = await readFile(tlsFile, 'utf8');
    expect(tlsOnDisk).toContain('-----BEGIN ENCRYPTED PRIVATE KEY-----');
    expect(() => createPrivateKey(tlsOnDisk)).toThrow();
    const secretBody = tlsPem.split('\n').slice(1, -2).join('');
    const unlockSecret = Buffer.from(unlockKey.slice('SWMKEY-1-'.length), 'base64');
    for (const bytes of await allBytes(dir)) {
      for (const needle of [Buffer.from(dek), Buffer.from(Buffer.from(dek).toString('base64')), Buffer.from(Buffer.from(dek).toString('hex')), unlockSecret, Buffer.from(unlockKey), Buffer.from(CANARY), Buffer.from(secretBody.slice(0, 40))]) {
        expect(bytes.includes(needle)).toBe(false);
      }
    }
    // Control: the scanner finds what is there.
    expect((await allBytes(keysDir)).some((b) => b.includes(Buffer.from('unlock-key')))).toBe(true);
  });

  it('restarted locked: refuses until unlocked; a wrong key says "invalid unlock key" and keeps it locked', async () => {
    const unlockKey = generateUnlockKey();
    const first = await KeyManager.create(keysDir, { unlockKey, tlsKeyFile: tlsFile, logger });
    const log = await openLog(first.dek());
    await writeEntries(log, 1, 5);
    await closeLog(log);

    const km = await KeyManager.open(keysDir, { tlsKeyFile: tlsFile, logger });
    expect(km.status()).toMatchObject({ locked: true, autolock: true });
    expect((await refusal(() => km.dek())).message).toBe(LOCKED_MESSAGE);
    expect((await refusal(km.loadTlsKey())).code).toBe('ERR_KEYMANAGER_LOCKED');
    expect((await refusal(km.withDek((d) => openLog(d)))).code).toBe('ERR_KEYMANAGER_LOCKED');
    expect((await refusal(km.rotateDek(() => Promise.resolve()))).code).toBe('ERR_KEYMANAGER_LOCKED');

    const wrong = await refusal(km.unlock(generateUnlockKey()));
    expect(wrong.message).toBe("invalid unlock key: it does not open this manager's data encryption key; the manager stays locked");
    expect(km.locked).toBe(true);
    const malformed = await refusal(km.unlock('SWMKEY-1-short'));
    expect(malformed.message).toMatch(/^invalid unlock key: after SWMKEY-1- it must hold 32 bytes in base64/);
    expect((await refusal(km.unlock('hunter2'))).message).toMatch(/^invalid unlock key: it must start with SWMKEY-1-/);
    expect(km.locked).toBe(true);

    await km.unlock(`  ${unlockKey}\n`);
    expect(km.locked).toBe(false);
    expect(await km.loadTlsKey()).toBe(tlsPem);
    const reopened = await km.withDek((d) => openLog(d));
    expect(texts(reopened)).toEqual([1, 2, 3, 4, 5].map((i) => `${CANARY}-${i}`));
    expect((await refusal(km.unlock(unlockKey))).code).toBe('ERR_KEYMANAGER_NOT_LOCKED');
  });

  it('DEK rotation: new writes under the new key, everything still readable after a restart, the old key no longer opens the log', async () => {
    const km = await KeyManager.create(keysDir, { logger });
    const oldDek = km.dek();
    const log = await openLog(oldDek);
    await writeEntries(log, 1, 10);
    const newDek = await km.rotateDek((d) => log.rotateKey(d));
    expect(Buffer.from(newDek).equals(Buffer.from(oldDek))).toBe(false);
    expect(Buffer.from(km.dek()).equals(Buffer.from(newDek))).toBe(true);
    await writeEntries(log, 11, 15);
    await closeLog(log);

    const again = await KeyManager.open(keysDir, { logger });
    expect(again.status()).toEqual({ locked: false, autolock: false, dekRotations: 1, rotationPending: false });
    const reopened = await again.withDek((d) => openLog(d));
    expect(texts(reopened)).toHaveLength(15);
    await closeLog(reopened);
    await expect(DurableLog.open(logDir, { dek: oldDek, logger })).rejects.toMatchObject({ code: 'ERR_RAFT_WRONG_KEY' });

    // A failed apply leaves the old key current and nothing pending.
    await expect(again.rotateDek(() => Promise.reject(new Error('disk full')))).rejects.toThrow('disk full');
    expect(again.status()).toMatchObject({ dekRotations: 1, rotationPending: false });
    expect(Buffer.from(again.dek()).equals(Buffer.from(newDek))).toBe(true);
  });

  it('autolock on → rotate the unlock key → off: DEK rotated on each flip, TLS key encrypted then plain, old keys refused', async () => {
    const km = await KeyManager.create(keysDir, { tlsKeyFile: tlsFile, logger });
    const log = await openLog(km.dek());
    await writeEntries(log, 1, 3);
    const apply = (d: Uint8Array): Promise<void> => log.rotateKey(d);

    const k1 = generateUnlockKey();
    await km.setUnlockKey(k1, apply);
    expect(km.status()).toEqual({ locked: false, autolock: true, dekRotations: 1, rotationPending: false });
    expect(await readFile(tlsFile, 'utf8')).toContain('ENCRYPTED PRIVATE KEY');
    expect(await km.loadTlsKey()).toBe(tlsPem);

    const k2 = generateUnlockKey();
    await km.setUnlockKey(k2, apply);
    expect(km.status().dekRotations).toBe(1); // a new unlock key re-wraps; only autolock flips rotate
    const restarted = await KeyManager.open(keysDir, { tlsKeyFile: tlsFile, logger });
    expect((await refusal(restarted.unlock(k1))).code).toBe('ERR_KEYMANAGER_INVALID_KEY');
    await restarted.unlock(k2);
    expect(await restarted.loadTlsKey()).toBe(tlsPem);

    // A renewed TLS key is stored encrypted under autolock.
    const renewed = tlsKeyPem();
    await restarted.storeTlsKey(renewed);
    expect(await readFile(tlsFile, 'utf8')).toContain('ENCRYPTED PRIVATE KEY');
    expect(await restarted.loadTlsKey()).toBe(renewed);

    await restarted.setUnlockKey(null, apply);
    expect(restarted.status()).toEqual({ locked: false, autolock: false, dekRotations: 2, rotationPending: false });
    expect(await readFile(tlsFile, 'utf8')).toBe(renewed);
    await writeEntries(log, 4, 4);
    await closeLog(log);
    const plain = await KeyManager.open(keysDir, { tlsKeyFile: tlsFile, logger });
    expect(plain.locked).toBe(false);
    expect(texts(await plain.withDek((d) => openLog(d)))).toHaveLength(4);
  });

  it('a crash between writes leaves a usable state: a torn temp file is ignored; a rotation cut after re-sealing finishes on open', async () => {
    const km = await KeyManager.create(keysDir, { logger });
    const keysFile = path.join(keysDir, KEYS_FILE);
    const log = await openLog(km.dek());
    await writeEntries(log, 1, 4);

    // A write cut short leaves only its temp file: the previous state opens.
    const before = await readFile(keysFile, 'utf8');
    await writeFile(`${keysFile}.tmp-99999`, before.slice(0, before.length / 2));
    expect((await KeyManager.open(keysDir, { logger })).locked).toBe(false);

    // Crash after the log was re-sealed under the pending DEK but before the key file promoted it.
    const crashState = path.join(dir, 'keys-at-crash.json');
    await km.rotateDek(async (d) => {
      await log.rotateKey(d);
      await copyFile(keysFile, crashState);
    });
    await closeLog(log);
    await copyFile(crashState, keysFile);
    const afterCrash = await KeyManager.open(keysDir, { logger });
    expect(afterCrash.status().rotationPending).toBe(true);
    const reopened = await afterCrash.withDek((d) => openLog(d));
    expect(texts(reopened)).toHaveLength(4);
    expect(afterCrash.status()).toMatchObject({ rotationPending: false, dekRotations: 1 });
    await closeLog(reopened);
    // …and the promotion was durable.
    const later = await KeyManager.open(keysDir, { logger });
    expect(texts(await openLog(later.dek()))).toHaveLength(4);

    // A damaged key file is refused with a message, not misread.
    await writeFile(keysFile, '{"format":1,');
    expect((await refusal(KeyManager.open(keysDir, { logger }))).code).toBe('ERR_KEYMANAGER_CORRUPT');
    expect((await refusal(KeyManager.create(keysDir, { logger }))).code).toBe('ERR_KEYMANAGER_EXISTS');
  });
});

describe('cluster autolock sync', () => {
  it("swarm update --autolock through the control API re-keys a manager's keys; turning it off undoes it", async () => {
    const cluster = await StoreCluster.start({ size: 1 });
    const dir = await mkdtemp(path.join(tmpdir(), 'shoal-keysync-'));
    try {
      const store = (await cluster.waitLeader()).store;
      await store.update((tx) => tx.create('cluster', { Spec: { Name: 'default', EncryptionConfig: { AutoLockManagers: false } } }));
      const km = await KeyManager.create(dir, { logger });
      const rotations: Uint8Array[] = [];
      const sync = watchClusterKeys(store, km, async (d) => void rotations.push(d), logger);
      try {
        const api = new ControlApi({ store, logger });
        const c = api.getCluster();
        await api.updateCluster(undefined, c.Version.Index, { ...c.Spec, EncryptionConfig: { AutoLockManagers: true } });
        const key = api.getUnlockKey().unlockKey;
        await waitFor('the key manager to take the unlock key and rotate its DEK', () => km.unlockKey === key && km.status().dekRotations === 1);
        expect(km.autolock).toBe(true);
        expect(rotations).toHaveLength(1);
        const locked = await KeyManager.open(dir, { logger });
        expect(locked.locked).toBe(true);
        await locked.unlock(key);

        const c2 = api.getCluster();
        await api.updateCluster(undefined, c2.Version.Index, { ...c2.Spec, EncryptionConfig: { AutoLockManagers: false } });
        await waitFor('the key manager to drop autolock and rotate its DEK', () => !km.autolock && km.status().dekRotations === 2);
        expect(rotations).toHaveLength(2);
        expect((await KeyManager.open(dir, { logger })).locked).toBe(false);
      } finally {
        sync.stop();
        await sync.done;
      }
    } finally {
      await cluster.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
