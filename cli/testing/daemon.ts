// Test fixture: one shoald (swarm plugin, unix socket, cluster port on loopback port 0) running in
// the test's own process, with the shoal CLI (in process) and the real docker CLI (a child process,
// so the daemon keeps answering) pointed at it. `stop()` stops the daemon and removes its directory.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';

import { Daemon } from '../daemon/daemon.js';
import { SwarmPlugin } from '../daemon/swarm/plugin.js';
import { runCli } from '../main.js';

const run = promisify(execFile);

export interface Captured {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export interface TestDaemon {
  readonly dir: string;
  readonly socket: string;
  /** The shoal CLI, in this process, against the daemon. */
  shoal(...args: string[]): Promise<Captured>;
  /** The docker CLI (its own config dir), against the daemon. */
  docker(...args: string[]): Promise<Captured>;
  stop(): Promise<void>;
}

export async function startTestDaemon(name: string, hostname: string, dockerTimeoutMs = 30_000): Promise<TestDaemon> {
  const dir = await mkdtemp(join(tmpdir(), `shoal-${name}-`));
  const socket = join(dir, 'shoal.sock');
  const daemon = new Daemon(
    { dataRoot: join(dir, 'data'), socket, listenAddr: '127.0.0.1:0', advertiseAddr: '', registryMirrors: [], insecureRegistries: [], logLevel: 'error', hostname },
    pino({ level: 'silent' }),
    [new SwarmPlugin()],
  );
  try {
    await daemon.start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    socket,
    async shoal(...args) {
      let out = '';
      let err = '';
      const code = await runCli([...args, '-H', `unix://${socket}`], { out: (t) => (out += t), err: (t) => (err += t) }, {});
      return { code, out, err };
    },
    async docker(...args) {
      try {
        const r = await run('docker', ['-H', `unix://${socket}`, ...args], { env: { ...process.env, DOCKER_CONFIG: join(dir, 'docker-config') }, timeout: dockerTimeoutMs });
        return { code: 0, out: r.stdout, err: r.stderr };
      } catch (e) {
        const x = e as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof x.code === 'number' ? x.code : 1, out: x.stdout ?? '', err: x.stderr ?? '' };
      }
    },
    async stop() {
      try {
        await daemon.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
