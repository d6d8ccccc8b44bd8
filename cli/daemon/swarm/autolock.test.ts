// Autolock end to end through shoald processes and the shoal CLI, as an operator sees it: three
// manager daemons on loopback, `shoal swarm init --autolock` prints the unlock key, a manager
// daemon killed -9 and restarted is locked (dockerd's 503 on every cluster endpoint, its cluster
// port closed, `leave` refused), its data root holds no canary and no plain TLS key, `shoal swarm
// unlock` with a wrong key is refused and it stays locked, with the right key it rejoins Raft and
// serves; `unlock-key --rotate` moves every manager to the new key; `swarm update
// --autolock=false --snapshot-interval 5000` turns it off and sets the Raft setting.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCKED_MESSAGE } from '../../../manager/keymanager/errors.js';
import { unixRequest } from '../../testing/http.js';

const ROOT = path.join(import.meta.dirname, '..', '..', '..');
const SHOALD = path.join(ROOT, 'cli', 'shoald.ts');
const SHOAL = path.join(ROOT, 'cli', 'shoal.ts');
const WAIT_MS = 60_000;
const SECRET_CANARY = 'autolock-e2e-secret-canary-5f2a';
const SERVICE_CANARY = 'autolock-e2e-service-canary-c81d';
const MANAGERS = 3;

interface Daemon {
  readonly dataRoot: string;
  readonly socket: string;
  child: ChildProcess | null;
  output: string;
}

let dir: string;
const daemons: Daemon[] = [];

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, limitMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (let i = 0; i < limitMs / 100; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await sleep(100);
  }
  throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
}

function startDaemon(d: Daemon, hostname: string): void {
  const child = spawn(process.execPath, ['--import', 'tsx', SHOALD, '--data-root', d.dataRoot, '--socket', d.socket, '--listen-addr', '127.0.0.1:0', '--hostname', hostname, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
  });
  d.child = child;
  d.output = '';
  child.stdout!.on('data', (b: Buffer) => (d.output = (d.output + b.toString()).slice(-20_000)));
  child.stderr!.on('data', (b: Buffer) => (d.output = (d.output + b.toString()).slice(-20_000)));
}

async function waitReady(d: Daemon): Promise<void> {
  await waitFor(`shoald to serve ${d.socket}`, async () => {
    if (d.child?.exitCode !== null) throw new Error(`shoald exited (${String(d.child?.exitCode)}): ${d.output}`);
    if (!existsSync(d.socket)) return undefined;
    return (await unixRequest(d.socket, 'GET', '/_ping').then((r) => r.status === 200, () => false)) ? true : undefined;
  });
}

async function stopDaemon(d: Daemon, signal: NodeJS.Signals): Promise<void> {
  const child = d.child;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await Promise.race([exited, sleep(20_000)]);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
  d.child = null;
}

interface Answer {
  readonly status: number;
  readonly body: Obj | undefined;
}

async function call(d: Daemon, method: string, p: string, body?: unknown): Promise<Answer> {
  const r = await unixRequest(d.socket, method, `/v1.41${p}`, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { 'Content-Type': 'application/json' });
  return { status: r.status, body: r.text === '' ? undefined : (JSON.parse(r.text) as Obj) };
}

async function ok(d: Daemon, method: string, p: string, body?: unknown): Promise<Obj | undefined> {
  const a = await call(d, method, p, body);
  if (a.status >= 300) throw new Error(`${method} ${p} → ${a.status} ${JSON.stringify(a.body)}`);
  return a.body;
}

/** Runs the shoal CLI against a daemon, with `input` on its stdin. */
async function shoal(d: Daemon, args: readonly string[], input = ''): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', SHOAL, '-H', `unix://${d.socket}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, out, err };
}

async function keysKind(d: Daemon): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(path.join(d.dataRoot, 'swarm', 'swarm-raft-keys.json'), 'utf8')) as { kek: { kind: string } }).kek.kind;
  } catch {
    return undefined;
  }
}

async function allFileBytes(root: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const name of await readdir(root, { recursive: true })) {
    const p = path.join(root, name);
    const st = await stat(p).catch(() => null);
    if (st?.isFile() === true) parts.push(await readFile(p));
  }
  return Buffer.concat(parts);
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
  dir = await mkdtemp(path.join(tmpdir(), 'shoal-autolock-'));
  for (let i = 0; i < MANAGERS; i++) {
    daemons.push({ dataRoot: path.join(dir, `m${i}`, 'data'), socket: path.join(dir, `m${i}`, 'shoald.sock'), child: null, output: '' });
    startDaemon(daemons[i]!, `autolock-m${i}`);
  }
  await Promise.all(daemons.map(waitReady));
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(daemons.map((d) => stopDaemon(d, 'SIGTERM')));
  await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('autolock through shoald processes', () => {
  it('a killed autolocked manager restarts locked, refuses a wrong key, and rejoins with the right one', async () => {
    const [m0, m1, m2] = daemons as [Daemon, Daemon, Daemon];

    // shoal swarm init --autolock prints the key.
    const init = await shoal(m0, ['swarm', 'init', '--autolock', '--listen-addr', '127.0.0.1:0']);
    expect(init.err).toBe('');
    expect(init.code).toBe(0);
    const key = /SWMKEY-1-[A-Za-z0-9+/=]+/.exec(init.out)?.[0];
    expect(key, init.out).toBeDefined();
    expect((await ok(m0, 'GET', '/swarm/unlockkey'))!['UnlockKey']).toBe(key);
    expect(await keysKind(m0)).toBe('unlock-key');

    const swarm = (await ok(m0, 'GET', '/swarm'))!;
    const self = (await ok(m0, 'GET', '/info'))!['Swarm'] as Obj;
    const addr = ((await ok(m0, 'GET', `/nodes/${self['NodeID']}`))!['ManagerStatus'] as Obj)['Addr'] as string;
    for (const d of [m1, m2]) await ok(d, 'POST', '/swarm/join', { ListenAddr: '127.0.0.1:0', AdvertiseAddr: '', RemoteAddrs: [addr], JoinToken: swarm['JoinTokens']['Manager'] });
    // Each joined manager follows the cluster's autolock setting by itself.
    for (const d of [m1, m2]) await waitFor('a joined manager to move its keys under the unlock key', async () => ((await keysKind(d)) === 'unlock-key' ? true : undefined));

    await ok(m0, 'POST', '/secrets/create', { Name: 'db-password', Data: Buffer.from(SECRET_CANARY).toString('base64') });
    await ok(m0, 'POST', '/services/create', { Name: SERVICE_CANARY, Mode: { Replicated: { Replicas: 0 } }, TaskTemplate: { ContainerSpec: { Image: 'busybox', Args: ['echo', SECRET_CANARY] } } });
    await waitFor('the service to replicate to m1', async () => ((await call(m1, 'GET', `/services/${SERVICE_CANARY}`)).status === 200 ? true : undefined));
    const m1Addr = (JSON.parse(await readFile(path.join(m1.dataRoot, 'swarm', 'manager.json'), 'utf8')) as { advertiseAddr: string }).advertiseAddr;

    // kill -9, then a grep of the whole data root: no canary, no key in the clear.
    await stopDaemon(m1, 'SIGKILL');
    const disk = await allFileBytes(m1.dataRoot);
    for (const needle of [SECRET_CANARY, SERVICE_CANARY, Buffer.from(SECRET_CANARY).toString('base64'), key!, 'BEGIN PRIVATE KEY', 'BEGIN EC PRIVATE KEY']) {
      expect(disk.includes(needle), `found ${needle} in m1's data root`).toBe(false);
    }
    expect(await readFile(path.join(m1.dataRoot, 'swarm', 'certificates', 'swarm-node.key'), 'utf8')).toContain('BEGIN ENCRYPTED PRIVATE KEY');

    // Restarted: locked, serves nothing.
    startDaemon(m1, 'autolock-m1');
    await waitReady(m1);
    expect(((await ok(m1, 'GET', '/info'))!['Swarm'] as Obj)['LocalNodeState']).toBe('locked');
    for (const p of ['/services', '/nodes', '/swarm', '/swarm/unlockkey']) {
      expect(await call(m1, 'GET', p)).toEqual({ status: 503, body: { message: LOCKED_MESSAGE } });
    }
    expect(await portOpen(m1Addr)).toBe(false);
    expect(await call(m1, 'POST', '/swarm/leave')).toEqual({ status: 503, body: { message: 'Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.' } });
    expect((await shoal(m1, ['node', 'ls'])).err).toBe(`Error response from daemon: ${LOCKED_MESSAGE}\n`);

    // A wrong key and a malformed one: refused, still locked.
    const wrong = await shoal(m1, ['swarm', 'unlock'], `SWMKEY-1-${Buffer.alloc(32, 9).toString('base64')}\n`);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toBe('Error response from daemon: swarm could not be unlocked: invalid key provided\n');
    expect((await call(m1, 'POST', '/swarm/unlock', { UnlockKey: 'hunter2' }))).toEqual({ status: 400, body: { message: 'invalid key string' } });
    expect(((await ok(m1, 'GET', '/info'))!['Swarm'] as Obj)['LocalNodeState']).toBe('locked');
    expect(await portOpen(m1Addr)).toBe(false);

    // The right key (from stdin, as docker reads it): it rejoins and serves.
    const unlocked = await shoal(m1, ['swarm', 'unlock'], `${key!}\n`);
    expect(unlocked.err).toBe('');
    expect(unlocked.code).toBe(0);
    expect(((await ok(m1, 'GET', '/info'))!['Swarm'] as Obj)['LocalNodeState']).toBe('active');
    expect(await portOpen(m1Addr)).toBe(true);
    // Its store comes back from its own disk: replayed up to the commit index it had saved, the
    // rest applied once the leader's next message tells it the cluster's commit index (bounded).
    const back = await waitFor('the service on the unlocked manager', async () => {
      const r = await call(m1, 'GET', `/services/${SERVICE_CANARY}`);
      return r.status === 200 ? r.body : undefined;
    });
    expect((back!['Spec'] as Obj)['Name']).toBe(SERVICE_CANARY);
    await ok(m0, 'POST', '/configs/create', { Name: 'after-unlock', Data: Buffer.from('x').toString('base64') });
    await waitFor('a write on the leader to reach the unlocked manager', async () => ((await call(m1, 'GET', '/configs/after-unlock')).status === 200 ? true : undefined));
    expect(await call(m1, 'POST', '/swarm/unlock', { UnlockKey: key })).toEqual({ status: 409, body: { message: 'swarm is not locked' } });
    const notLocked = await shoal(m1, ['swarm', 'unlock'], `${key!}\n`);
    expect([notLocked.code, notLocked.err]).toEqual([1, 'Error: swarm is not locked\n']);

    // unlock-key --rotate -q: a new key; the old one no longer unlocks m2 after a restart.
    const rotated = await shoal(m1, ['swarm', 'unlock-key', '--rotate', '-q']);
    expect(rotated.code).toBe(0);
    const newKey = rotated.out.trim();
    expect(newKey).toMatch(/^SWMKEY-1-/);
    expect(newKey).not.toBe(key);
    await sleep(1000); // the managers follow the Cluster object; m2 re-wraps its keys under newKey
    await stopDaemon(m2, 'SIGTERM');
    startDaemon(m2, 'autolock-m2');
    await waitReady(m2);
    expect((await call(m2, 'POST', '/swarm/unlock', { UnlockKey: key })).status).toBe(401);
    expect((await call(m2, 'POST', '/swarm/unlock', { UnlockKey: newKey })).status).toBe(200);

    // swarm update --autolock=false: no key needed after a restart.
    const update = await shoal(m0, ['swarm', 'update', '--autolock=false', '--snapshot-interval', '5000']);
    expect([update.code, update.out]).toEqual([0, 'Swarm updated.\n']);
    expect((await ok(m0, 'GET', '/swarm/unlockkey'))!['UnlockKey']).toBe('');
    expect(((await ok(m0, 'GET', '/swarm'))!['Spec'] as Obj)['Raft']).toMatchObject({ SnapshotInterval: 5000, LogEntriesForSlowFollowers: 500 });
    await waitFor('m1 to turn autolock off', async () => ((await keysKind(m1)) === 'plain' ? true : undefined));
    await stopDaemon(m1, 'SIGTERM');
    startDaemon(m1, 'autolock-m1');
    await waitReady(m1);
    await waitFor('m1 to come back active without a key', async () => (((await ok(m1, 'GET', '/info'))!['Swarm'] as Obj)['LocalNodeState'] === 'active' ? true : undefined));
  }, 360_000); // 112–188 s measured on the shared 2-core machine (load average ~20)
});
