// The node's swarm state as `/info` reports it (Docker's `Info.Swarm`, api/types/swarm.Info) and the
// `Swarm` header of `/_ping`. Until the manager plugs in a source, a node is "inactive".

export type LocalNodeState = 'inactive' | 'pending' | 'active' | 'error' | 'locked';

export interface RemoteManager {
  readonly NodeID: string;
  readonly Addr: string;
}

/** `/info` `.Swarm`. `Cluster` is the swarm's ClusterInfo (no JoinTokens); absent when inactive. */
export interface SwarmInfo {
  readonly NodeID: string;
  readonly NodeAddr: string;
  readonly LocalNodeState: LocalNodeState;
  readonly ControlAvailable: boolean;
  readonly Error: string;
  readonly RemoteManagers: readonly RemoteManager[] | null;
  readonly Nodes?: number;
  readonly Managers?: number;
  readonly Cluster?: Readonly<Record<string, unknown>>;
}

/** What a node not in any swarm reports (dockerd's exact shape for an inactive node). */
export const INACTIVE_SWARM: SwarmInfo = {
  NodeID: '',
  NodeAddr: '',
  LocalNodeState: 'inactive',
  ControlAvailable: false,
  Error: '',
  RemoteManagers: null,
};

/** Where the daemon gets the node's swarm state; the manager/agent provide one when they land. */
export interface SwarmStatusSource {
  swarmInfo(): Promise<SwarmInfo> | SwarmInfo;
}

export const inactiveSwarmSource: SwarmStatusSource = { swarmInfo: () => INACTIVE_SWARM };

/** The `/_ping` `Swarm` header: `inactive`, `pending`, `error`, `locked`, `active/worker` or `active/manager`. */
export function swarmPingHeader(info: SwarmInfo): string {
  if (info.LocalNodeState !== 'active') return info.LocalNodeState;
  return info.ControlAvailable ? 'active/manager' : 'active/worker';
}
