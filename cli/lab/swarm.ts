// Forming the lab's swarm: the first manager runs `swarm init`, the other managers and the workers
// join with the tokens. Not available yet: the manager (issue 4) brings `/swarm/init` and
// `/swarm/join`. When it lands, this function does the init and joins over each host's socket
// (ApiClient.post('/swarm/init', ...) on NAME-m1, then '/swarm/join' with the manager or worker
// token from GET /swarm on the others, RemoteAddrs [m1's address:2377]) and records the node IDs.
import type { LabState } from './state.js';

export interface SwarmFormation {
  readonly formed: boolean;
  readonly message: string;
  /** Host name → swarm node ID, once formed. */
  readonly nodeIds?: Readonly<Record<string, string>>;
}

export async function formSwarm(state: LabState): Promise<SwarmFormation> {
  return {
    formed: false,
    message: `not formed: swarm mode is not available in shoald yet (the manager is still being built), so the ${state.hosts.length} daemons run without a swarm ('docker info' shows Swarm: inactive)`,
  };
}
