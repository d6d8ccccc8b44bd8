// What crosses the dispatcher's wire besides the typed messages: task states as the proto enum,
// task statuses as shoal.types.TaskStatus, and the store's Docker-shaped objects as UTF-8 JSON
// (see proto/shoal/dispatcher.proto for why). Shared by the dispatcher and the agent.
import { TaskState as ProtoTaskState, type TaskStatus as ProtoTaskStatus, type NodeDescription as ProtoNodeDescription } from '../../proto/gen/shoal/types.js';
import type { Config, Node, NodeDescription, PortConfig, Secret, Task, TaskState, TaskStatus } from '../store/types.js';

const TO_PROTO: Readonly<Record<TaskState, ProtoTaskState>> = {
  new: ProtoTaskState.TASK_STATE_NEW,
  // The proto enum (swarmkit's numbering) has no ALLOCATED; no worker ever sees it.
  allocated: ProtoTaskState.TASK_STATE_PENDING,
  pending: ProtoTaskState.TASK_STATE_PENDING,
  assigned: ProtoTaskState.TASK_STATE_ASSIGNED,
  accepted: ProtoTaskState.TASK_STATE_ACCEPTED,
  preparing: ProtoTaskState.TASK_STATE_PREPARING,
  ready: ProtoTaskState.TASK_STATE_READY,
  starting: ProtoTaskState.TASK_STATE_STARTING,
  running: ProtoTaskState.TASK_STATE_RUNNING,
  complete: ProtoTaskState.TASK_STATE_COMPLETE,
  shutdown: ProtoTaskState.TASK_STATE_SHUTDOWN,
  failed: ProtoTaskState.TASK_STATE_FAILED,
  rejected: ProtoTaskState.TASK_STATE_REJECTED,
  remove: ProtoTaskState.TASK_STATE_REMOVE,
  orphaned: ProtoTaskState.TASK_STATE_ORPHANED,
};

const FROM_PROTO: ReadonlyMap<ProtoTaskState, TaskState> = new Map(
  (Object.entries(TO_PROTO) as [TaskState, ProtoTaskState][]).filter(([s]) => s !== 'allocated').map(([s, p]) => [p, s]),
);

export function taskStateToProto(state: TaskState): ProtoTaskState {
  return TO_PROTO[state];
}

/** Null for a value the enum does not name (a newer peer, or garbage). */
export function taskStateFromProto(state: ProtoTaskState): TaskState | null {
  return FROM_PROTO.get(state) ?? null;
}

export function taskStatusToProto(s: TaskStatus): ProtoTaskStatus {
  const parsed = Date.parse(s.Timestamp);
  return {
    timestampUnixMs: Number.isFinite(parsed) ? parsed : 0,
    state: taskStateToProto(s.State),
    message: s.Message,
    err: s.Err ?? '',
    containerId: s.ContainerStatus?.ContainerID ?? '',
    pid: s.ContainerStatus?.PID ?? 0,
    exitCode: s.ContainerStatus?.ExitCode ?? 0,
    ...(s.PortStatus?.Ports !== undefined && s.PortStatus.Ports.length > 0
      ? {
          portStatus: {
            ports: s.PortStatus.Ports.map((p) => ({
              name: p.Name ?? '',
              protocol: p.Protocol ?? 'tcp',
              targetPort: p.TargetPort,
              publishedPort: p.PublishedPort ?? 0,
              publishMode: p.PublishMode ?? 'ingress',
            })),
          },
        }
      : {}),
  };
}

const PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp']);

function portFromProto(p: { name: string; protocol: string; targetPort: number; publishedPort: number; publishMode: string }): PortConfig {
  return {
    ...(p.name !== '' ? { Name: p.name } : {}),
    Protocol: PROTOCOLS.has(p.protocol) ? (p.protocol as 'tcp' | 'udp' | 'sctp') : 'tcp',
    TargetPort: p.targetPort,
    PublishedPort: p.publishedPort,
    PublishMode: p.publishMode === 'host' ? 'host' : 'ingress',
  };
}

/** Null when the state is not one the enum names. */
export function taskStatusFromProto(p: ProtoTaskStatus): TaskStatus | null {
  const state = taskStateFromProto(p.state);
  if (state === null) return null;
  const container =
    p.containerId !== '' || p.pid !== 0 || p.exitCode !== 0
      ? { ContainerStatus: { ...(p.containerId !== '' ? { ContainerID: p.containerId } : {}), ...(p.pid !== 0 ? { PID: p.pid } : {}), ExitCode: p.exitCode } }
      : {};
  return {
    Timestamp: new Date(p.timestampUnixMs > 0 ? p.timestampUnixMs : Date.now()).toISOString(),
    State: state,
    Message: p.message,
    ...(p.err !== '' ? { Err: p.err } : {}),
    ...container,
    ...(p.portStatus !== undefined && p.portStatus.ports.length > 0 ? { PortStatus: { Ports: p.portStatus.ports.map(portFromProto) } } : {}),
  };
}

export function encodeJson(o: unknown): Buffer {
  return Buffer.from(JSON.stringify(o), 'utf8');
}

/** Parses JSON bytes that must be an object carrying a string `ID` (Task, Secret, Config, Node). */
export function decodeObjectJson<T extends Task | Secret | Config | Node>(what: string, bytes: Uint8Array): T {
  const o: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
  if (typeof o !== 'object' || o === null || typeof (o as { ID?: unknown }).ID !== 'string') {
    throw new TypeError(`${what}: expected a JSON object with a string ID`);
  }
  return o as T;
}

/** A NodeDescription from the JSON bytes (preferred) or the typed message; null when neither says anything. */
export function nodeDescriptionFromWire(json: Uint8Array, typed: ProtoNodeDescription | undefined): NodeDescription | null {
  if (json.byteLength > 0) {
    const o: unknown = JSON.parse(Buffer.from(json).toString('utf8'));
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TypeError('description_json: expected a JSON object');
    return o as NodeDescription;
  }
  if (typed === undefined) return null;
  return {
    Hostname: typed.hostname,
    ...(typed.platform !== undefined ? { Platform: { Architecture: typed.platform.architecture, OS: typed.platform.os } } : {}),
    ...(typed.resources !== undefined ? { Resources: { NanoCPUs: typed.resources.nanoCpus, MemoryBytes: typed.resources.memoryBytes } } : {}),
    Engine: { EngineVersion: typed.engineVersion },
  };
}
