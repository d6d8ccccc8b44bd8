// The scheduler's input and output. The shapes follow Docker's swarm objects (Engine API
// `Node`, `Task`, `TaskTemplate`), narrowed to the fields placement reads, so the manager can
// map its store objects into them field by field. Everything is plain readonly data.

/** `Description.Platform` of a node, or one entry of `Placement.Platforms` of an image. */
export interface Platform {
  readonly OS?: string;
  readonly Architecture?: string;
}

/** One entry of `GenericResources`: a count of a kind (`gpu=2`) or one named unit (`gpu=GPU-3f…`). */
export interface GenericResource {
  readonly DiscreteResourceSpec?: { readonly Kind: string; readonly Value: number };
  readonly NamedResourceSpec?: { readonly Kind: string; readonly Value: string };
}

/** `Description.Resources` of a node, or `Resources.Reservations` of a task. */
export interface Resources {
  readonly NanoCPUs?: number;
  readonly MemoryBytes?: number;
  readonly GenericResources?: readonly GenericResource[];
}

export type NodeRole = 'manager' | 'worker';
export type NodeAvailability = 'active' | 'pause' | 'drain';
export type NodeState = 'unknown' | 'down' | 'ready' | 'disconnected';

/** A node as Docker shows it, reduced to what placement reads. */
export interface SchedulerNode {
  readonly ID: string;
  readonly Spec: {
    readonly Role: NodeRole;
    readonly Availability: NodeAvailability;
    readonly Labels?: Readonly<Record<string, string>>;
  };
  readonly Description?: {
    readonly Hostname?: string;
    readonly Platform?: Platform;
    readonly Resources?: Resources;
    readonly Engine?: { readonly Labels?: Readonly<Record<string, string>> };
  };
  readonly Status: {
    readonly State: NodeState;
    /** Only read by `node.ip` constraints. */
    readonly Addr?: string;
  };
}

/** `Placement.Preferences[]`: only `Spread` exists in swarm mode. */
export interface PlacementPreference {
  readonly Spread?: { readonly SpreadDescriptor: string };
}

export interface Placement {
  readonly Constraints?: readonly string[];
  readonly Preferences?: readonly PlacementPreference[];
  /** Maximum tasks of the service on one node; 0 or absent = no limit. */
  readonly MaxReplicas?: number;
  /** Platforms the image supports; empty or absent = any. */
  readonly Platforms?: readonly Platform[];
}

/** The part of a service's `TaskTemplate` that placement reads. */
export interface TaskSpec {
  readonly Resources?: {
    readonly Reservations?: Resources;
    readonly Limits?: Resources;
  };
  readonly Placement?: Placement;
}

export type PortProtocol = 'tcp' | 'udp' | 'sctp';

/** Docker's `PortConfig`. Only `PublishMode: 'host'` with a non-zero `PublishedPort` is placement's business. */
export interface PortConfig {
  readonly Name?: string;
  readonly Protocol?: PortProtocol;
  readonly TargetPort?: number;
  readonly PublishedPort?: number;
  readonly PublishMode?: 'ingress' | 'host';
}

/** Task states in their order; a task only moves forward. */
export type TaskState =
  | 'new' | 'pending' | 'assigned' | 'accepted' | 'preparing' | 'ready' | 'starting' | 'running'
  | 'complete' | 'shutdown' | 'failed' | 'rejected' | 'remove' | 'orphaned';

interface TaskBase {
  readonly ID: string;
  readonly ServiceID: string;
  readonly Spec: TaskSpec;
  /** The service's resolved endpoint (ports as allocated), as swarmkit copies it onto each task. */
  readonly Endpoint?: { readonly Ports?: readonly PortConfig[] };
}

/**
 * A task that holds resources on a node: the caller passes every task whose observed state is
 * not yet terminal. Its reservations and host ports count against the node; it counts for spread
 * only while its desired state is at most `complete` (a task being shut down frees its slot).
 */
export interface PlacedTask extends TaskBase {
  readonly NodeID: string;
  readonly DesiredState?: TaskState;
  /** The generic resource units the task holds, as a pass assigned them (`SchedulerResult.genericResources`). */
  readonly AssignedGenericResources?: readonly GenericResource[];
}

/**
 * A task waiting for a node. Tasks of one service with the same `SpecVersion.Index` are treated
 * as identical and decided together; without a version, the placement-relevant fields are compared.
 * A task that already names a node (a global service's task) is only checked against that node.
 */
export interface PendingTask extends TaskBase {
  readonly SpecVersion?: { readonly Index: number };
  readonly NodeID?: string;
}

export interface SchedulerInput {
  readonly nodes: readonly SchedulerNode[];
  readonly placedTasks: readonly PlacedTask[];
  readonly pendingTasks: readonly PendingTask[];
}

export interface SchedulerResult {
  /** Task ID → node ID, in decision order. */
  readonly assignments: ReadonlyMap<string, string>;
  /**
   * Task ID → why it stays pending, e.g.
   * `no suitable node (insufficient memory on 3 nodes; constraint node.labels.zone==a not met on 2 nodes)`.
   */
  readonly unplaced: ReadonlyMap<string, string>;
  /**
   * Task ID → the generic resource units given to it, for assigned tasks that reserve some: named
   * units (e.g. `{NamedResourceSpec:{Kind:'gpu',Value:'GPU-1'}}`) where the node names its units,
   * counts otherwise. The manager keeps them on the task (`AssignedGenericResources`) so the worker
   * can tell the container which units are its own, and passes them back in `PlacedTask`.
   */
  readonly genericResources: ReadonlyMap<string, readonly GenericResource[]>;
}
