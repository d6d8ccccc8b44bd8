// Until a manager serves them, every swarm-mode endpoint answers as dockerd does on a node that is
// in no swarm: 503 with Docker's exact text. These are catch-alls: a handler the manager registers
// for a path (e.g. `POST /swarm/init`) is more specific and wins.
import { MSG_NO_SWARM, UnavailableError } from './errors.js';
import type { ApiServer } from './server.js';

export const SWARM_PATH_PREFIXES = ['/swarm', '/nodes', '/services', '/tasks', '/secrets', '/configs', '/networks'] as const;
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;

export function registerSwarmGate(api: ApiServer): void {
  for (const prefix of SWARM_PATH_PREFIXES) {
    api.route(ALL_METHODS, `${prefix}/*`, () => {
      throw new UnavailableError(MSG_NO_SWARM);
    });
  }
}
