// Small builders for scheduler input in tests: a node or a task with sensible defaults and only
// the fields a test cares about spelled out.

import type {
  NodeAvailability,
  NodeRole,
  NodeState,
  PendingTask,
  PlacedTask,
  Placement,
  Platform,
  PortConfig,
  Resources,
  SchedulerNode,
} from '../types.js';

export const GiB = 2 ** 30;
export const CPU = 1e9;

export interface NodeOptions {
  readonly role?: NodeRole;
  readonly availability?: NodeAvailability;
  readonly state?: NodeState;
  readonly labels?: Record<string, string>;
  readonly engineLabels?: Record<string, string>;
  readonly hostname?: string;
  readonly platform?: Platform;
  readonly resources?: Resources;
  readonly addr?: string;
}

/** A ready, active worker on linux/x86_64 with 4 CPUs and 8 GiB unless told otherwise. */
export function node(id: string, o: NodeOptions = {}): SchedulerNode {
  return {
    ID: id,
    Spec: { Role: o.role ?? 'worker', Availability: o.availability ?? 'active', Labels: o.labels ?? {} },
    Description: {
      Hostname: o.hostname ?? `host-${id}`,
      Platform: o.platform ?? { OS: 'linux', Architecture: 'x86_64' },
      Resources: o.resources ?? { NanoCPUs: 4 * CPU, MemoryBytes: 8 * GiB },
      Engine: { Labels: o.engineLabels ?? {} },
    },
    Status: { State: o.state ?? 'ready', ...(o.addr === undefined ? {} : { Addr: o.addr }) },
  };
}

export interface TaskOptions {
  readonly reservations?: Resources;
  readonly placement?: Placement;
  readonly ports?: readonly PortConfig[];
  readonly version?: number;
  readonly nodeId?: string;
}

/** `count` pending tasks `<service>.1` … `<service>.<count>` sharing one spec. */
export function tasks(service: string, count: number, o: TaskOptions = {}): PendingTask[] {
  const spec = {
    ...(o.reservations === undefined ? {} : { Resources: { Reservations: o.reservations } }),
    ...(o.placement === undefined ? {} : { Placement: o.placement }),
  };
  const endpoint = o.ports === undefined ? {} : { Endpoint: { Ports: o.ports } };
  return Array.from({ length: count }, (_, i) => ({
    ID: `${service}.${i + 1}`,
    ServiceID: service,
    Spec: spec,
    SpecVersion: { Index: o.version ?? 1 },
    ...endpoint,
    ...(o.nodeId === undefined ? {} : { NodeID: o.nodeId }),
  }));
}

/** A task already running on a node. */
export function placed(id: string, service: string, nodeId: string, o: Omit<TaskOptions, 'nodeId' | 'version'> = {}): PlacedTask {
  return {
    ID: id,
    ServiceID: service,
    NodeID: nodeId,
    DesiredState: 'running',
    Spec: {
      ...(o.reservations === undefined ? {} : { Resources: { Reservations: o.reservations } }),
      ...(o.placement === undefined ? {} : { Placement: o.placement }),
    },
    ...(o.ports === undefined ? {} : { Endpoint: { Ports: o.ports } }),
  };
}

/** Tasks per node ID in an assignment map. */
export function countByNode(assignments: ReadonlyMap<string, string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const nodeId of assignments.values()) counts.set(nodeId, (counts.get(nodeId) ?? 0) + 1);
  return counts;
}
