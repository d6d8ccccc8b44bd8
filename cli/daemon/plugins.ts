// The parts that plug into shoald. The manager (swarm init/join, control API), the worker agent,
// executor and overlay each add a DaemonPlugin here; the daemon starts them in this order after
// its own routes are registered and before it serves, and stops them in reverse order.
//
// A plugin registers API routes on ctx.api (they win over the 503 "not a swarm manager" catch-alls
// for /swarm, /nodes, /services, /tasks, /secrets, /configs, /networks), maps its typed errors with
// ctx.api.addErrorMapper, and reports the node's swarm state with ctx.setSwarmStatusSource.
import type { Logger } from 'pino';
import type { ApiServer } from './api/server.js';
import type { DaemonOptions } from './options.js';
import type { SwarmStatusSource } from './swarm-status.js';
import { SwarmPlugin } from './swarm/plugin.js';

export interface DaemonContext {
  readonly options: DaemonOptions;
  readonly api: ApiServer;
  /** The daemon's root logger: take a child with `{ component: '<name>' }`. */
  readonly logger: Logger;
  /** Stable per data root. */
  readonly engineId: string;
  /** Replaces the source of `/info` `.Swarm` and the `/_ping` `Swarm` header. */
  setSwarmStatusSource(source: SwarmStatusSource): void;
}

export interface DaemonPlugin {
  readonly name: string;
  start(ctx: DaemonContext): Promise<void>;
  stop(): Promise<void>;
}

/** The plugins shoald runs, in start order: the manager role (swarm/). */
export function defaultPlugins(): DaemonPlugin[] {
  return [new SwarmPlugin()];
}
