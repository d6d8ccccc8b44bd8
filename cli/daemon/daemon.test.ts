import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { unixRequest } from '../testing/http.js';
import { Daemon, SocketInUseError } from './daemon.js';
import { DataRootLockedError, LOCK_FILE } from './lock.js';
import type { DaemonOptions } from './options.js';
import type { DaemonPlugin } from './plugins.js';
import { reply } from './api/server.js';

const silent = pino({ level: 'silent' });
const READY_TIMEOUT_MS = 30_000;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'shoald-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function optionsIn(dir: string, extra: Partial<DaemonOptions> = {}): DaemonOptions {
  return {
    dataRoot: join(dir, 'data'),
    socket: join(dir, 'run', 'shoal.sock'),
    listenAddr: '0.0.0.0:2377',
    advertiseAddr: '',
    registryMirrors: [],
    insecureRegistries: [],
    logLevel: 'info',
    hostname: 'h1',
    ...extra,
  };
}

async function started(opts: DaemonOptions, plugins: DaemonPlugin[] = []): Promise<Daemon> {
  const d = new Daemon(opts, silent, plugins);
  await d.start();
  cleanups.push(() => d.stop());
  return d;
}

describe('Daemon', () => {
  it('serves the API on its socket and removes the socket when stopped', async () => {
    const dir = await tempDir();
    const opts = optionsIn(dir);
    const d = await started(opts);
    const r = await unixRequest(opts.socket, 'GET', '/_ping');
    expect([r.status, r.text]).toEqual([200, 'OK']);
    expect(existsSync(join(opts.dataRoot, LOCK_FILE))).toBe(true);
    await d.stop();
    expect(existsSync(opts.socket)).toBe(false);
    expect(existsSync(join(opts.dataRoot, LOCK_FILE))).toBe(false);
  });

  it('refuses a second daemon on the same data root, naming the running one', async () => {
    const dir = await tempDir();
    await started(optionsIn(dir));
    const second = new Daemon(optionsIn(dir, { socket: join(dir, 'other.sock') }), silent, []);
    const err = await second.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DataRootLockedError);
    expect((err as Error).message).toBe(`another shoald (pid ${process.pid}) is already running with data root ${join(dir, 'data')}; stop it first or use another --data-root`);
    expect(existsSync(join(dir, 'other.sock'))).toBe(false);
  });

  it('refuses a socket another daemon is serving', async () => {
    const dir = await tempDir();
    const first = optionsIn(dir);
    await started(first);
    const second = new Daemon(optionsIn(dir, { dataRoot: join(dir, 'data2') }), silent, []);
    await expect(second.start()).rejects.toThrow(SocketInUseError);
    // The failed start released its own lock.
    expect(existsSync(join(dir, 'data2', LOCK_FILE))).toBe(false);
  });

  it('takes over a stale lock and socket left by a daemon that died', async () => {
    const dir = await tempDir();
    const opts = optionsIn(dir);
    // A process that existed and is gone: its PID is in the lock, its socket file is left behind.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(opts.dataRoot, { recursive: true });
    mkdirSync(join(dir, 'run'), { recursive: true });
    writeFileSync(join(opts.dataRoot, LOCK_FILE), `${dead.stdout} 12345\n`);
    writeFileSync(opts.socket, '');
    await started(opts);
    expect(readFileSync(join(opts.dataRoot, LOCK_FILE), 'utf8').split(' ')[0]).toBe(String(process.pid));
    expect((await unixRequest(opts.socket, 'GET', '/_ping')).status).toBe(200);
  });

  it('starts plugins whose routes and swarm state the API then serves, and stops them', async () => {
    const dir = await tempDir();
    const opts = optionsIn(dir);
    const events: string[] = [];
    const plugin: DaemonPlugin = {
      name: 'fake-manager',
      start: async (ctx) => {
        events.push('start');
        ctx.api.route('GET', '/swarm', () => reply.json({ ID: 'cluster1' }));
        ctx.setSwarmStatusSource({ swarmInfo: () => ({ NodeID: 'n1', NodeAddr: '10.0.0.1', LocalNodeState: 'active', ControlAvailable: true, Error: '', RemoteManagers: [] }) });
      },
      stop: async () => void events.push('stop'),
    };
    const d = await started(opts, [plugin]);
    expect(JSON.parse((await unixRequest(opts.socket, 'GET', '/v1.50/swarm')).text)).toEqual({ ID: 'cluster1' });
    expect((await unixRequest(opts.socket, 'GET', '/nodes')).status).toBe(503);
    expect((await unixRequest(opts.socket, 'HEAD', '/_ping')).headers['swarm']).toBe('active/manager');
    const info = JSON.parse((await unixRequest(opts.socket, 'GET', '/info')).text) as { Swarm: { NodeID: string } };
    expect(info.Swarm.NodeID).toBe('n1');
    await d.stop();
    expect(events).toEqual(['start', 'stop']);
  });
});

describe('the shoald process', () => {
  it('shuts down cleanly on SIGTERM: exit code 0, socket removed, lock released', async () => {
    const dir = await tempDir();
    const socket = join(dir, 'shoald.sock');
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'shoald.ts'), '--data-root', join(dir, 'data'), '--socket', socket], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!existsSync(socket) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(socket), output).toBe(true);

    // A second daemon on the same data root is refused with one clear line and exit code 1.
    const second = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'shoald.ts'), '--data-root', join(dir, 'data'), '--socket', join(dir, 'b.sock')], {
      encoding: 'utf8',
    });
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`shoald: another shoald (pid ${child.pid}) is already running with data root ${join(dir, 'data')}`);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(existsSync(join(dir, 'data', LOCK_FILE))).toBe(false);
    expect(output).toContain('"msg":"stopped"');
  });
});
