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

// The last whole second formatted, for isoTimestamp: statuses come in bursts within one second.
let isoSecond = Number.NaN;
let isoPrefix = '';
/** Years 0000-9999 (toISOString's 24-character form). */
const ISO_FAST_MAX_MS = 253_402_300_800_000;

/**
 * `new Date(ms).toISOString()`, faster for many timestamps in the same second: V8's toISOString
 * costs about a microsecond (far more on a loaded machine), and every status item needs one. The
 * formatted second is reused and only the milliseconds appended. Same result for every input
 * (out-of-range or non-finite values go to toISOString, which throws as it does).
 */
export function isoTimestamp(ms: number): string {
  const whole = Math.floor(ms);
  if (!(whole >= 0 && whole < ISO_FAST_MAX_MS)) return new Date(ms).toISOString();
  const second = Math.floor(whole / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    isoSecond = second;
  }
  const r = whole - second * 1000;
  return `${isoPrefix}${r < 10 ? '00' : r < 100 ? '0' : ''}${r}Z`;
}

/** Null when the state is not one the enum names. */
export function taskStatusFromProto(p: ProtoTaskStatus): TaskStatus | null {
  const state = taskStateFromProto(p.state);
  if (state === null) return null;
  // Built field by field (no conditional spreads): this runs once per status item on the leader.
  const out: { -readonly [K in keyof TaskStatus]: TaskStatus[K] } = {
    Timestamp: isoTimestamp(p.timestampUnixMs > 0 ? p.timestampUnixMs : Date.now()),
    State: state,
    Message: p.message,
  };
  if (p.err !== '') out.Err = p.err;
  if (p.containerId !== '' || p.pid !== 0 || p.exitCode !== 0) {
    // Keys in this order (ContainerID, PID, ExitCode): statuses are compared by their JSON.
    const c: { ContainerID?: string; PID?: number; ExitCode?: number } = {};
    if (p.containerId !== '') c.ContainerID = p.containerId;
    if (p.pid !== 0) c.PID = p.pid;
    c.ExitCode = p.exitCode;
    out.ContainerStatus = c;
  }
  if (p.portStatus !== undefined && p.portStatus.ports.length > 0) out.PortStatus = { Ports: p.portStatus.ports.map(portFromProto) };
  return out;
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
