// shoald's lifecycle: lock the data root, open the API socket, start the plugins; on stop, undo it
// all in reverse (socket file removed, lock released).
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { registerSwarmGate } from './api/swarm-gate.js';
import { ApiServer } from './api/server.js';
import { registerSystemRoutes } from './api/system.js';
import { acquireDataRootLock, type DataRootLock } from './lock.js';
import type { DaemonOptions } from './options.js';
import type { DaemonContext, DaemonPlugin } from './plugins.js';
import { inactiveSwarmSource, type SwarmStatusSource } from './swarm-status.js';

const SOCKET_PROBE_TIMEOUT_MS = 1_000;

export class SocketInUseError extends Error {
  override readonly name = 'SocketInUseError';
  readonly code = 'ERR_SOCKET_IN_USE';
  constructor(readonly socket: string) {
    super(`socket ${socket} is in use by another running daemon; stop it first or use another --socket`);
  }
}

/** True when something accepts connections on the unix socket at `path`. */
export function probeSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, SOCKET_PROBE_TIMEOUT_MS);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

function loadEngineId(dataRoot: string): string {
  const path = join(dataRoot, 'engine-id');
  try {
    const id = readFileSync(path, 'utf8').trim();
    if (id !== '') return id;
  } catch {
    // first start
  }
  const hex = randomBytes(16).toString('hex');
  const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  writeFileSync(path, `${id}\n`, { mode: 0o600 });
  return id;
}

export class Daemon {
  readonly api: ApiServer;
  private swarmSource: SwarmStatusSource = inactiveSwarmSource;
  private lock: DataRootLock | undefined;
  private started: DaemonPlugin[] = [];
  private socketOpen = false;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly options: DaemonOptions,
    private readonly logger: Logger,
    private readonly plugins: readonly DaemonPlugin[],
  ) {
    this.api = new ApiServer({ logger: logger.child({ component: 'api' }) });
  }

  async start(): Promise<void> {
    const { options } = this;
    mkdirSync(options.dataRoot, { recursive: true, mode: 0o700 });
    this.lock = acquireDataRootLock(options.dataRoot);
    try {
      const engineId = loadEngineId(options.dataRoot);
      registerSystemRoutes(this.api, { options, engineId, swarm: () => this.swarmSource });
      const ctx: DaemonContext = {
        options,
        api: this.api,
        logger: this.logger,
        engineId,
        setSwarmStatusSource: (source) => {
          this.swarmSource = source;
        },
      };
      for (const plugin of this.plugins) {
        this.logger.info({ plugin: plugin.name }, 'starting plugin');
        await plugin.start(ctx);
        this.started.push(plugin);
      }
      // Registered last: equally specific routes from plugins win over these catch-alls.
      registerSwarmGate(this.api);
      await this.openSocket();
      this.logger.info(
        { socket: options.socket, dataRoot: options.dataRoot, listenAddr: options.listenAddr, hostname: options.hostname, pid: process.pid },
        'shoald is serving the API',
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async openSocket(): Promise<void> {
    const { socket } = this.options;
    mkdirSync(dirname(socket), { recursive: true, mode: 0o755 });
    if (await probeSocket(socket)) throw new SocketInUseError(socket);
    try {
      unlinkSync(socket); // left by a daemon that died without cleaning up
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await this.api.listenUnix(socket);
    this.socketOpen = true;
    chmodSync(socket, 0o660);
  }

  /** Stops serving and the plugins; removes the socket and releases the lock. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    await this.api.close();
    if (this.socketOpen) {
      this.socketOpen = false;
      try {
        unlinkSync(this.options.socket);
      } catch {
        // already gone
      }
    }
    for (const plugin of [...this.started].reverse()) {
      try {
        await plugin.stop();
      } catch (err) {
        this.logger.error({ err, plugin: plugin.name }, 'plugin failed to stop cleanly');
      }
    }
    this.started = [];
    this.lock?.release();
    this.lock = undefined;
  }
}
