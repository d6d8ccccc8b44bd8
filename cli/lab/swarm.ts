// Forming the lab's swarm over each host's daemon socket, as a user would with the CLI:
// `swarm init --advertise-addr <m1>` on NAME-m1, then `swarm join --token <manager token> <m1>:2377`
// on the other managers, one at a time (Raft adds members one by one). Workers join with the worker
// token (shoald then runs the agent over runc). A worker the daemon refuses stays out of the swarm
// and the message says why. A manager that cannot join fails `lab up` (which then removes
// everything it made).
import { ApiClient } from '../client/api-client.js';
import { DaemonResponseError } from '../errors.js';
import type { LabHost, LabState } from './state.js';

export interface SwarmFormation {
  readonly formed: boolean;
  readonly message: string;
  /** Host name → swarm node ID, once formed. */
  readonly nodeIds?: Readonly<Record<string, string>>;
}

const SWARM_PORT = 2377;

interface InfoSwarm {
  readonly Swarm?: { readonly NodeID?: string };
}

async function withClient<T>(host: LabHost, fn: (c: ApiClient) => Promise<T>): Promise<T> {
  const client = new ApiClient(`unix://${host.socket}`);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

export async function formSwarm(state: LabState): Promise<SwarmFormation> {
  const managers = state.hosts.filter((h) => h.role === 'manager');
  const workers = state.hosts.filter((h) => h.role === 'worker');
  const first = managers[0];
  if (first === undefined) return { formed: false, message: 'not formed: the lab has no manager host' };
  const remote = `${first.address}:${SWARM_PORT}`;
  const nodeIds: Record<string, string> = {};

  const tokens = await withClient(first, async (c) => {
    nodeIds[first.name] = await c.post<string>('/swarm/init', {
      ListenAddr: `0.0.0.0:${SWARM_PORT}`,
      AdvertiseAddr: first.address,
      ForceNewCluster: false,
      Spec: {},
    });
    return (await c.get<{ JoinTokens: { Worker: string; Manager: string } }>('/swarm')).JoinTokens;
  });

  const join = (host: LabHost, token: string): Promise<string> =>
    withClient(host, async (c) => {
      await c.post('/swarm/join', { ListenAddr: `0.0.0.0:${SWARM_PORT}`, AdvertiseAddr: host.address, RemoteAddrs: [remote], JoinToken: token });
      return (await c.get<InfoSwarm>('/info')).Swarm?.NodeID ?? '';
    });

  for (const host of managers.slice(1)) nodeIds[host.name] = await join(host, tokens.Manager);

  const notJoined: string[] = [];
  let workerReason = '';
  for (const host of workers) {
    try {
      nodeIds[host.name] = await join(host, tokens.Worker);
    } catch (err) {
      if (!(err instanceof DaemonResponseError)) throw err;
      notJoined.push(host.name);
      workerReason = err.daemonMessage;
    }
  }
  const joinedWorkers = workers.length - notJoined.length;
  let message = `formed: ${managers.length} manager${managers.length === 1 ? '' : 's'} (leader ${first.name} at ${remote})`;
  if (workers.length > 0) message += `, ${joinedWorkers} of ${workers.length} workers joined`;
  if (notJoined.length > 0) message += ` (${notJoined.join(', ')} not joined: ${workerReason})`;
  return { formed: true, message, nodeIds };
}
