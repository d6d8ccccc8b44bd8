// The objects the store holds, in the shapes of Docker's swarm API (API 1.41–1.50 field names,
// PascalCase), so the Docker-compatible HTTP API can return them as they are. Specs are stored
// verbatim: fields not named here survive a round trip because the store never rebuilds a spec
// field by field. Times are RFC 3339 strings with a zone; durations are integer nanoseconds.
//
// Everything read from the store is deeply frozen: reads share objects, they never copy them.

import type { ClusterCAData } from '../../ca/cluster-ca.js';
export type Kind = 'cluster' | 'node' | 'service' | 'task' | 'network' | 'secret' | 'config';

/** In a fixed order: the wire code of a kind (actions, snapshots) is its position here. */
export const KINDS: readonly Kind[] = ['cluster', 'node', 'service', 'task', 'network', 'secret', 'config'];

export interface Version {
  /** The Raft index of the entry that last changed the object. */
  readonly Index: number;
}

export type Labels = Readonly<Record<string, string>>;

/** What every stored object carries. */
export interface Meta {
  /** 25 characters, base36 (Docker's format). */
  readonly ID: string;
  readonly Version: Version;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
}

// --------------------------------------------------------------------------------- tasks

export type TaskState =
  | 'new'
  | 'allocated'
  | 'pending'
  | 'assigned'
  | 'accepted'
  | 'preparing'
  | 'ready'
  | 'starting'
  | 'running'
  | 'complete'
  | 'shutdown'
  | 'failed'
  | 'rejected'
  | 'remove'
  | 'orphaned';

/** Lifecycle order: observed state only moves forward along it. */
export const TASK_STATES: readonly TaskState[] = [
  'new',
  'allocated',
  'pending',
  'assigned',
  'accepted',
  'preparing',
  'ready',
  'starting',
  'running',
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'remove',
  'orphaned',
];

export interface Mount {
  readonly Type?: 'bind' | 'volume' | 'tmpfs' | 'npipe' | 'cluster';
  readonly Source?: string;
  readonly Target: string;
  readonly ReadOnly?: boolean;
}

export interface FileTarget {
  readonly Name: string;
  readonly UID: string;
  readonly GID: string;
  readonly Mode: number;
}

export interface SecretReference {
  readonly File?: FileTarget;
  readonly SecretID: string;
  readonly SecretName: string;
}

export interface ConfigReference {
  readonly File?: FileTarget;
  readonly Runtime?: Readonly<Record<string, never>>;
  readonly ConfigID: string;
  readonly ConfigName: string;
}

export interface HealthConfig {
  readonly Test?: readonly string[];
  readonly Interval?: number;
  readonly Timeout?: number;
  readonly StartPeriod?: number;
  readonly Retries?: number;
}

export interface ContainerSpec {
  readonly Image: string;
  readonly Labels?: Labels;
  readonly Command?: readonly string[];
  readonly Args?: readonly string[];
  readonly Hostname?: string;
  readonly Env?: readonly string[];
  readonly Dir?: string;
  readonly User?: string;
  readonly Groups?: readonly string[];
  readonly TTY?: boolean;
  readonly OpenStdin?: boolean;
  readonly ReadOnly?: boolean;
  readonly Mounts?: readonly Mount[];
  readonly StopSignal?: string;
  readonly StopGracePeriod?: number;
  readonly Healthcheck?: HealthConfig;
  readonly Hosts?: readonly string[];
  readonly DNSConfig?: { readonly Nameservers?: readonly string[]; readonly Search?: readonly string[]; readonly Options?: readonly string[] };
  readonly Secrets?: readonly SecretReference[];
  readonly Configs?: readonly ConfigReference[];
  readonly Isolation?: string;
  readonly Init?: boolean;
  readonly Sysctls?: Labels;
}

export interface ResourceSet {
  readonly NanoCPUs?: number;
  readonly MemoryBytes?: number;
  readonly Pids?: number;
}

export interface NetworkAttachmentConfig {
  /** A network ID (the CLI) or name (stacks). */
  readonly Target: string;
  readonly Aliases?: readonly string[];
  readonly DriverOpts?: Labels;
}

export interface Platform {
  readonly Architecture?: string;
  readonly OS?: string;
}

export interface TaskSpec {
  readonly ContainerSpec?: ContainerSpec;
  readonly Resources?: { readonly Limits?: ResourceSet; readonly Reservations?: ResourceSet };
  readonly RestartPolicy?: {
    readonly Condition?: 'none' | 'on-failure' | 'any';
    readonly Delay?: number;
    readonly MaxAttempts?: number;
    readonly Window?: number;
  };
  readonly Placement?: {
    readonly Constraints?: readonly string[];
    readonly Preferences?: readonly { readonly Spread?: { readonly SpreadDescriptor: string } }[];
    readonly MaxReplicas?: number;
    readonly Platforms?: readonly Platform[];
  };
  readonly Networks?: readonly NetworkAttachmentConfig[];
  readonly LogDriver?: { readonly Name: string; readonly Options?: Labels };
  readonly ForceUpdate?: number;
  readonly Runtime?: string;
}

export interface PortStatus {
  readonly Ports?: readonly PortConfig[];
}

export interface TaskStatus {
  readonly Timestamp: string;
  readonly State: TaskState;
  readonly Message: string;
  readonly Err?: string;
  readonly ContainerStatus?: { readonly ContainerID?: string; readonly PID?: number; readonly ExitCode?: number };
  readonly PortStatus?: PortStatus;
}

export interface NetworkAttachment {
  readonly Network: Network;
  readonly Addresses: readonly string[];
  /** DNS aliases on this network (the attachment config's `Aliases`). */
  readonly Aliases?: readonly string[];
}

export interface Task extends Meta {
  readonly Labels?: Labels;
  readonly Spec: TaskSpec;
  readonly ServiceID: string;
  /** 1.. for replicated services; 0 for global ones. */
  readonly Slot: number;
  /** "" while not assigned. */
  readonly NodeID: string;
  readonly Status: TaskStatus;
  readonly DesiredState: TaskState;
  readonly NetworksAttachments?: readonly NetworkAttachment[];
  /** The service's Endpoint, copied by the allocator (as swarmkit does) when it publishes host-mode ports. */
  readonly Endpoint?: Endpoint;
  readonly JobIteration?: Version;
}

// ------------------------------------------------------------------------------ services

export interface PortConfig {
  readonly Name?: string;
  readonly Protocol?: 'tcp' | 'udp' | 'sctp';
  readonly TargetPort: number;
  readonly PublishedPort?: number;
  readonly PublishMode?: 'ingress' | 'host';
}

export interface EndpointSpec {
  readonly Mode?: 'vip' | 'dnsrr';
  readonly Ports?: readonly PortConfig[];
}

export interface UpdateConfig {
  readonly Parallelism?: number;
  readonly Delay?: number;
  readonly FailureAction?: 'pause' | 'continue' | 'rollback';
  readonly Monitor?: number;
  readonly MaxFailureRatio?: number;
  readonly Order?: 'stop-first' | 'start-first' | '';
}

export interface ServiceMode {
  readonly Replicated?: { readonly Replicas?: number };
  readonly Global?: Readonly<Record<string, never>>;
  readonly ReplicatedJob?: { readonly MaxConcurrent?: number; readonly TotalCompletions?: number };
  readonly GlobalJob?: Readonly<Record<string, never>>;
}

export interface ServiceSpec {
  readonly Name: string;
  readonly Labels?: Labels;
  readonly TaskTemplate: TaskSpec;
  readonly Mode?: ServiceMode;
  readonly UpdateConfig?: UpdateConfig;
  readonly RollbackConfig?: UpdateConfig;
  readonly Networks?: readonly NetworkAttachmentConfig[];
  readonly EndpointSpec?: EndpointSpec;
}

export interface Endpoint {
  readonly Spec?: EndpointSpec;
  readonly Ports?: readonly PortConfig[];
  readonly VirtualIPs?: readonly { readonly NetworkID: string; readonly Addr: string }[];
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';

export interface Service extends Meta {
  readonly Spec: ServiceSpec;
  readonly PreviousSpec?: ServiceSpec;
  readonly Endpoint?: Endpoint;
  readonly UpdateStatus?: { readonly State?: UpdateState; readonly StartedAt?: string; readonly CompletedAt?: string; readonly Message?: string };
}

// --------------------------------------------------------------------------------- nodes

export type NodeRole = 'worker' | 'manager';
export type NodeAvailability = 'active' | 'pause' | 'drain';
export type NodeState = 'unknown' | 'down' | 'ready' | 'disconnected';
export type Reachability = 'unknown' | 'unreachable' | 'reachable';

export interface TLSInfo {
  readonly TrustRoot?: string;
  readonly CertIssuerSubject?: string;
  readonly CertIssuerPublicKey?: string;
}

export interface NodeSpec {
  readonly Name?: string;
  readonly Labels?: Labels;
  readonly Role: NodeRole;
  readonly Availability: NodeAvailability;
}

export interface NodeDescription {
  readonly Hostname?: string;
  readonly Platform?: Platform;
  readonly Resources?: ResourceSet & { readonly GenericResources?: readonly unknown[] };
  readonly Engine?: { readonly EngineVersion?: string; readonly Labels?: Labels; readonly Plugins?: readonly { readonly Type: string; readonly Name: string }[] };
  readonly TLSInfo?: TLSInfo;
}

export interface Node extends Meta {
  readonly Spec: NodeSpec;
  readonly Description?: NodeDescription;
  readonly Status: { readonly State: NodeState; readonly Message?: string; readonly Addr?: string };
  /** Present on managers only. `Leader` is set on the leader only (followers omit it). */
  readonly ManagerStatus?: { readonly Leader?: boolean; readonly Reachability: Reachability; readonly Addr: string };
  /** The node's own addresses on overlay networks (its `ingress` sandbox for the routing mesh); set by the allocator. */
  readonly Attachments?: readonly NetworkAttachment[];
}

// ------------------------------------------------------------------------------ networks

export interface IPAMOptions {
  readonly Driver?: { readonly Name: string; readonly Options?: Labels };
  readonly Configs?: readonly { readonly Subnet?: string; readonly Range?: string; readonly Gateway?: string }[];
}

export interface NetworkSpec {
  readonly Name: string;
  readonly Labels?: Labels;
  readonly DriverConfiguration?: { readonly Name: string; readonly Options?: Labels };
  readonly IPv6Enabled?: boolean;
  readonly Internal?: boolean;
  readonly Attachable?: boolean;
  readonly Ingress?: boolean;
  readonly IPAMOptions?: IPAMOptions;
  readonly ConfigFrom?: { readonly Network: string };
  readonly Scope?: string;
}

export interface Network extends Meta {
  readonly Spec: NetworkSpec;
  readonly DriverState?: { readonly Name: string; readonly Options?: Labels };
  readonly IPAMOptions?: IPAMOptions;
}

// --------------------------------------------------------------------- secrets, configs

export interface SecretSpec {
  readonly Name: string;
  readonly Labels?: Labels;
  /** Standard base64 of the content. Kept in the store (workers need it); never returned by API reads. */
  readonly Data?: string;
  readonly Driver?: { readonly Name: string; readonly Options?: Labels };
  readonly Templating?: { readonly Name: string; readonly Options?: Labels };
}

export interface Secret extends Meta {
  readonly Spec: SecretSpec;
}

export interface ConfigSpec {
  readonly Name: string;
  readonly Labels?: Labels;
  /** Standard base64 of the content. */
  readonly Data?: string;
  readonly Templating?: { readonly Name: string; readonly Options?: Labels };
}

export interface Config extends Meta {
  readonly Spec: ConfigSpec;
}

// ------------------------------------------------------------------------------- cluster

export interface SwarmSpec {
  readonly Name: string;
  readonly Labels?: Labels;
  readonly Orchestration?: { readonly TaskHistoryRetentionLimit?: number };
  readonly Raft?: {
    readonly SnapshotInterval?: number;
    readonly KeepOldSnapshots?: number;
    readonly LogEntriesForSlowFollowers?: number;
    readonly ElectionTick?: number;
    readonly HeartbeatTick?: number;
  };
  readonly Dispatcher?: { readonly HeartbeatPeriod?: number };
  readonly CAConfig?: {
    readonly NodeCertExpiry?: number;
    readonly ExternalCAs?: readonly unknown[];
    readonly SigningCACert?: string;
    readonly SigningCAKey?: string;
    readonly ForceRotate?: number;
  };
  readonly TaskDefaults?: { readonly LogDriver?: { readonly Name: string; readonly Options?: Labels } };
  readonly EncryptionConfig?: { readonly AutoLockManagers: boolean };
}

/** A node removed from the swarm: its certificate is refused on every manager from then on. */
export interface RemovedNode {
  readonly ID: string;
  readonly RemovedAt: string;
}

export interface Cluster extends Meta {
  readonly Spec: SwarmSpec;
  readonly TLSInfo?: TLSInfo;
  readonly RootRotationInProgress?: boolean;
  readonly DefaultAddrPool?: readonly string[];
  readonly SubnetSize?: number;
  readonly DataPathPort?: number;
  /** `/swarm` returns them; `/info` does not. */
  readonly JoinTokens?: { readonly Worker: string; readonly Manager: string };
  // Fields that never leave the managers (the control API strips them from every read):
  /** The cluster CA's data with the root key (`ca/cluster-ca.ts` ClusterCAData): any manager can issue certificates. */
  readonly ShoalCA?: ClusterCAData;
  /** Nodes whose certificates are refused from now on (`node rm`, a removed manager). */
  readonly RemovedNodes?: readonly RemovedNode[];
  /** The autolock unlock key (SWMKEY-1-…); only `swarm unlock-key` shows it. */
  readonly ManagerUnlockKey?: string;
}

// --------------------------------------------------------------------------------- maps

export interface ObjectByKind {
  readonly cluster: Cluster;
  readonly node: Node;
  readonly service: Service;
  readonly task: Task;
  readonly network: Network;
  readonly secret: Secret;
  readonly config: Config;
}

export type StoreObject = ObjectByKind[Kind];

/**
 * What a caller hands to `tx.create`: the object without its bookkeeping. `ID` may be given
 * (e.g. a node's ID is its certificate's CN); otherwise the store makes one.
 */
export type NewObject<K extends Kind> = Omit<ObjectByKind[K], 'ID' | 'Version' | 'CreatedAt' | 'UpdatedAt'> & { readonly ID?: string };
