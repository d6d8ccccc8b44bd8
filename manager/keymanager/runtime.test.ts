// The key manager inside the manager runtime (one Manager, gRPC + mTLS on loopback, real files):
// the cluster's autolock setting moves this manager's keys, a restarted autolocked manager is
// locked until the right unlock key, nothing of a spec, a secret or the TLS key is readable in the
// data dir, the DEK rotates at runtime (the old one no longer opens anything), and the cluster's
// Spec.Raft snapshot settings apply at runtime.
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KEY_FILE } from '../../ca/identity.js';
import { DurableLog } from '../../raft/storage/index.js';
import { ControlApi } from '../controlapi/control-api.js';
import { CERTIFICATES_DIR, Manager, RAFT_DIR } from '../manager.js';
import { KeyManagerError, LOCKED_MESSAGE } from './errors.js';
import { KeyManagerDekSource } from './key-manager.js';

const logger = pino({ level: 'silent' });
const WAIT_MS = 20_000;
const SECRET_CANARY = 'km-runtime-secret-canary-41c9';
const SERVICE_CANARY = 'km-runtime-service-canary-77ab';
const TUNING = { tickMs: 50, electionTick: 10, heartbeatTick: 1, leaderServices: false, logger } as const;

let base: string;
const open: Manager[] = [];

async function waitUntil(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < WAIT_MS / 20; i++) {
    if (await cond()) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function keysOf(m: Manager): NonNullable<KeyManagerDekSource['keyManager']> {
  const src = m.keys;
  if (!(src instanceof KeyManagerDekSource) || src.keyManager === null) throw new Error('the manager runs without the key manager');
  return src.keyManager;
}

function controlOf(m: Manager): ControlApi {
  return new ControlApi({ store: m.store, update: (fn) => m.update(fn), logger });
}

async function setCluster(m: Manager, patch: (spec: Record<string, unknown>) => Record<string, unknown>, rotateUnlockKey = false): Promise<void> {
  const api = controlOf(m);
  const c = api.getCluster();
  await api.updateCluster(c.ID, c.Version.Index, patch(c.Spec as unknown as Record<string, unknown>), { unlockKey: rotateUnlockKey });
}

/** Every file under `dir` as raw bytes. */
async function dataDirBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const name of await readdir(dir, { recursive: true })) {
    const p = path.join(dir, name);
    if ((await stat(p)).isFile()) parts.push(await readFile(p));
  }
  return Buffer.concat(parts);
}

async function refusal(p: Promise<unknown>): Promise<KeyManagerError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeyManagerError);
    return err as KeyManagerError;
  }
  throw new Error('expected a refusal, the call succeeded');
}

async function portOpen(addr: string): Promise<boolean> {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = net.connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'km-runtime-'));
});

afterAll(async () => {
  await Promise.allSettled(open.splice(0).map((m) => m.close()));
  await rm(base, { recursive: true, force: true });
});

describe('the key manager in the manager runtime', () => {
  it('autolock on: locked after restart, a wrong key refused, the right key opens everything; no plaintext on disk', async () => {
    const dataRoot = path.join(base, 'autolock');
    let m = await Manager.init({ dataRoot, listenAddr: '127.0.0.1:0', ...TUNING });
    open.push(m);
    const addr = m.addr;
    const plainKeyPem = m.identity.keyPem;
    const km = keysOf(m);
    expect(km.autolock).toBe(false);
    const rotationsBefore = km.status().dekRotations;

    // swarm update --autolock=true: the manager follows the cluster object by itself.
    await setCluster(m, (spec) => ({ ...spec, EncryptionConfig: { AutoLockManagers: true } }));
    const unlockKey = controlOf(m).getUnlockKey().unlockKey;
    expect(unlockKey).toMatch(/^SWMKEY-1-/);
    // The DEK rotates when autolock flips (it was readable from the disk alone until now).
    await waitUntil('the manager to switch to the unlock key', () => km.autolock && km.unlockKey === unlockKey && km.status().dekRotations === rotationsBefore + 1);
    expect(await readFile(path.join(dataRoot, CERTIFICATES_DIR, KEY_FILE), 'utf8')).toContain('ENCRYPTED PRIVATE KEY');

    const api = controlOf(m);
    await api.createSecret({ Name: 'db-password', Data: Buffer.from(SECRET_CANARY).toString('base64') });
    await api.createService({ Name: SERVICE_CANARY, TaskTemplate: { ContainerSpec: { Image: 'busybox', Env: [`X=${SECRET_CANARY}`] } } });
    await m.close();
    open.splice(open.indexOf(m), 1);

    // A stolen disk: no canary, no unlock key, no TLS key body anywhere in the data dir.
    const disk = await dataDirBytes(dataRoot);
    for (const needle of [SECRET_CANARY, SERVICE_CANARY, Buffer.from(SECRET_CANARY).toString('base64'), unlockKey, unlockKey.slice('SWMKEY-1-'.length)]) {
      expect(disk.includes(needle), `found ${needle} in the data dir`).toBe(false);
    }
    const keyBody = plainKeyPem.split('\n').filter((l) => l !== '' && !l.startsWith('-----')).join('');
    expect(disk.includes(keyBody.slice(0, 40)), 'found the plain TLS key in the data dir').toBe(false);

    // Restart: locked, serves nothing.
    const locked = await refusal(Manager.restart({ dataRoot, ...TUNING }));
    expect(locked.code).toBe('ERR_KEYMANAGER_LOCKED');
    expect(locked.message).toBe(LOCKED_MESSAGE);
    expect(await portOpen(addr)).toBe(false);
    // A wrong key and a malformed one say so and keep it locked.
    const wrong = await refusal(Manager.restart({ dataRoot, ...TUNING, unlockKey: `SWMKEY-1-${Buffer.alloc(32, 7).toString('base64')}` }));
    expect(wrong.code).toBe('ERR_KEYMANAGER_INVALID_KEY');
    expect(wrong.message).toMatch(/^invalid unlock key: /);
    expect((await refusal(Manager.restart({ dataRoot, ...TUNING, unlockKey: 'not-a-key' }))).code).toBe('ERR_KEYMANAGER_INVALID_KEY');
    expect((await refusal(Manager.restart({ dataRoot, ...TUNING }))).code).toBe('ERR_KEYMANAGER_LOCKED');
    expect(await portOpen(addr)).toBe(false);

    // The right key: the manager serves again with every object.
    m = await Manager.restart({ dataRoot, ...TUNING, unlockKey: `  ${unlockKey}\n` });
    open.push(m);
    expect(m.addr).toBe(addr);
    expect(m.identity.keyPem).toBe(plainKeyPem);
    await waitUntil('the restarted manager to lead and apply its log', () => m.isLeader && controlOf(m).listServices().length === 1);
    expect(controlOf(m).getSecret('db-password').Spec.Name).toBe('db-password');
    expect(controlOf(m).getService(SERVICE_CANARY).Spec.Name).toBe(SERVICE_CANARY);
    expect(await portOpen(addr)).toBe(true);

    // unlock-key --rotate: the manager moves to the new key; the old one no longer opens it.
    await setCluster(m, (spec) => spec, true);
    const rotated = controlOf(m).getUnlockKey().unlockKey;
    expect(rotated).not.toBe(unlockKey);
    await waitUntil('the manager to take the rotated unlock key', () => keysOf(m).unlockKey === rotated);
    // Autolock off: the TLS key is plain again and a restart needs no key.
    await setCluster(m, (spec) => ({ ...spec, EncryptionConfig: { AutoLockManagers: false } }));
    await waitUntil('autolock to turn off on this manager', () => !keysOf(m).autolock);
    expect(await readFile(path.join(dataRoot, CERTIFICATES_DIR, KEY_FILE), 'utf8')).toContain('BEGIN PRIVATE KEY');
    await m.close();
    open.splice(open.indexOf(m), 1);
    m = await Manager.restart({ dataRoot, ...TUNING });
    open.push(m);
    await waitUntil('the restarted manager to lead and apply its log', () => m.isLeader && controlOf(m).listServices().length === 1);
    expect(controlOf(m).getUnlockKey().unlockKey).toBe('');
    await m.close();
    open.splice(open.indexOf(m), 1);
  });

  it('DEK rotation at runtime: new writes under the new key, the old key opens nothing afterwards', async () => {
    const dataRoot = path.join(base, 'rotation');
    let m = await Manager.init({ dataRoot, listenAddr: '127.0.0.1:0', ...TUNING, snapshotIntervalEntries: 8, snapshotKeepEntries: 2 });
    open.push(m);
    const api = controlOf(m);
    for (let i = 0; i < 5; i++) await api.createSecret({ Name: `before-${i}`, Data: Buffer.from(`v${i}`).toString('base64') });
    const km = keysOf(m);
    const oldDek = km.dek();
    await (m.keys as KeyManagerDekSource).rotateDek();
    const newDek = km.dek();
    expect(Buffer.from(newDek).equals(Buffer.from(oldDek))).toBe(false);
    for (let i = 0; i < 10; i++) await api.createSecret({ Name: `after-${i}`, Data: Buffer.from(`w${i}`).toString('base64') });
    await m.close();
    open.splice(open.indexOf(m), 1);

    // The old DEK opens nothing of the log (entries from before, the snapshot taken since).
    const raftDir = path.join(dataRoot, RAFT_DIR);
    await expect(DurableLog.open(raftDir, { dek: oldDek, logger })).rejects.toMatchObject({ code: 'ERR_RAFT_WRONG_KEY' });
    const log = await DurableLog.open(raftDir, { dek: newDek, logger });
    const snapshotIndex = log.memory.snapshot().metadata.index;
    await log.close();
    expect(snapshotIndex).toBeGreaterThan(0);

    m = await Manager.restart({ dataRoot, ...TUNING });
    open.push(m);
    await waitUntil('the restarted manager to lead and apply its log', () => m.isLeader && controlOf(m).listSecrets().length === 15);
    expect(controlOf(m).listSecrets().map((s) => s.Spec.Name).sort()).toEqual([...Array.from({ length: 10 }, (_, i) => `after-${i}`), ...Array.from({ length: 5 }, (_, i) => `before-${i}`)].sort());
    expect(keysOf(m).status()).toMatchObject({ dekRotations: 1, rotationPending: false });
    await m.close();
    open.splice(open.indexOf(m), 1);
  });

  it("the cluster's Spec.Raft snapshot interval applies at runtime", async () => {
    const dataRoot = path.join(base, 'snapshots');
    let m = await Manager.init({ dataRoot, listenAddr: '127.0.0.1:0', ...TUNING });
    open.push(m);
    const api = controlOf(m);
    for (let i = 0; i < 12; i++) await api.createConfig({ Name: `c-${i}`, Data: Buffer.from(`c${i}`).toString('base64') });
    // Default interval (10,000): no snapshot yet. swarm update --snapshot-interval 5:
    await setCluster(m, (spec) => ({ ...spec, Raft: { ...(spec['Raft'] as object), SnapshotInterval: 5, LogEntriesForSlowFollowers: 1 } }));
    for (let i = 12; i < 24; i++) await api.createConfig({ Name: `c-${i}`, Data: Buffer.from(`c${i}`).toString('base64') });
    const lastIndex = m.store.version;
    const dek = keysOf(m).dek();
    await m.close();
    open.splice(open.indexOf(m), 1);
    const log = await DurableLog.open(path.join(dataRoot, RAFT_DIR), { dek, logger });
    const snap = log.memory.snapshot().metadata.index;
    const first = log.memory.firstIndex();
    await log.close();
    expect(snap).toBeGreaterThan(lastIndex - 5);
    expect(first).toBeGreaterThan(snap - 2); // compacted, keeping one entry behind the snapshot

    m = await Manager.restart({ dataRoot, ...TUNING });
    open.push(m);
    await waitUntil('the restarted manager to lead and apply its log', () => m.isLeader && controlOf(m).listConfigs().length === 24);
    await m.close();
    open.splice(open.indexOf(m), 1);
  });
});
