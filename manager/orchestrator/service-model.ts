// What the orchestrators share about services and their tasks: the mode, the defaults Docker
// applies, new tasks, "dirty" tasks (made from an older spec) and the slot model.
//
// Slots: a replicated service has slots 1..Replicas; each slot holds the history of the tasks
// that filled it (one runnable at a time, more during a start-first update). A global service's
// tasks have Slot 0 and are keyed by node instead. `slotKey` names both kinds.
import type { NewObject, Service, ServiceSpec, Task, TaskState, UpdateConfig } from '../store/types.js';
import { needsAllocation } from '../allocator/endpoints.js';
import { endedOnItsOwn, isRunnable } from './task-state.js';

export type ServiceModeName = 'replicated' | 'global' | 'replicated-job' | 'global-job';

export function serviceMode(spec: ServiceSpec): ServiceModeName {
  const m = spec.Mode;
  if (m?.Global !== undefined) return 'global';
  if (m?.ReplicatedJob !== undefined) return 'replicated-job';
  if (m?.GlobalJob !== undefined) return 'global-job';
  return 'replicated';
}

export function isJob(mode: ServiceModeName): boolean {
  return mode === 'replicated-job' || mode === 'global-job';
}

export function isGlobalLike(mode: ServiceModeName): boolean {
  return mode === 'global' || mode === 'global-job';
}

/** `Mode.Replicated.Replicas`, default 1 (Docker's). */
export function replicasOf(spec: ServiceSpec): number {
  return Math.max(0, Math.floor(spec.Mode?.Replicated?.Replicas ?? 1));
}

// ------------------------------------------------------------------------------ defaults

const SECOND_NS = 1_000_000_000;

export interface EffectiveRestartPolicy {
  readonly condition: 'none' | 'on-failure' | 'any';
  readonly delayMs: number;
  /** 0 = unlimited. */
  readonly maxAttempts: number;
  /** 0 = the whole life of the slot. */
  readonly windowMs: number;
}

/** Docker's defaults: condition any, delay 5 s, unlimited attempts. Jobs never restart a completed task. */
export function restartPolicyOf(spec: ServiceSpec): EffectiveRestartPolicy {
  const p = spec.TaskTemplate.RestartPolicy ?? {};
  let condition = p.Condition ?? 'any';
  if (isJob(serviceMode(spec)) && condition === 'any') condition = 'on-failure';
  return {
    condition,
    delayMs: nsToMs(p.Delay ?? 5 * SECOND_NS),
    maxAttempts: Math.max(0, p.MaxAttempts ?? 0),
    windowMs: nsToMs(p.Window ?? 0),
  };
}

export interface EffectiveUpdateConfig {
  /** 0 = all at once. */
  readonly parallelism: number;
  readonly delayMs: number;
  readonly failureAction: 'pause' | 'continue' | 'rollback';
  readonly monitorMs: number;
  readonly maxFailureRatio: number;
  readonly order: 'stop-first' | 'start-first';
}

/** Docker's defaults for both update and rollback: parallelism 1, no delay, pause, monitor 5 s, ratio 0, stop-first. */
export function updateConfigOf(c: UpdateConfig | undefined): EffectiveUpdateConfig {
  return {
    parallelism: Math.max(0, Math.floor(c?.Parallelism ?? 1)),
    delayMs: nsToMs(c?.Delay ?? 0),
    failureAction: c?.FailureAction ?? 'pause',
    monitorMs: nsToMs(c?.Monitor ?? 5 * SECOND_NS),
    maxFailureRatio: c?.MaxFailureRatio ?? 0,
    order: c?.Order === 'start-first' ? 'start-first' : 'stop-first',
  };
}

export const DEFAULT_TASK_HISTORY_RETENTION_LIMIT = 5;

export function nsToMs(ns: number): number {
  return Math.max(0, Math.round(ns / 1_000_000));
}

// ------------------------------------------------------------------------------ tasks

export interface NewTaskOptions {
  readonly slot: number;
  /** Preset for global services' tasks; "" lets the scheduler choose. */
  readonly nodeId?: string;
  readonly desired: TaskState;
  readonly nowIso: string;
  readonly jobIteration?: number;
}

/**
 * A new task of `service` from its current spec: observed state NEW, for the allocator to give it
 * its network attachments and admit it (→ PENDING); or PENDING at once when the allocator would
 * have nothing to give it (`needsAllocation`), which saves one write per task on every manager.
 */
export function newTask(service: Service, o: NewTaskOptions): NewObject<'task'> {
  const admitted = !needsAllocation(service.Spec);
  return {
    Spec: service.Spec.TaskTemplate,
    ServiceID: service.ID,
    Slot: o.slot,
    NodeID: o.nodeId ?? '',
    DesiredState: o.desired,
    Status: admitted ? { Timestamp: o.nowIso, State: 'pending', Message: 'pending task scheduling' } : { Timestamp: o.nowIso, State: 'new', Message: 'created' },
    ...(o.jobIteration !== undefined ? { JobIteration: { Index: o.jobIteration } } : {}),
  };
}

/** JSON with object keys sorted, so two equal specs give equal strings whatever their key order. */
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
}

/** `stableJson` of frozen objects, by identity. */
const frozenKeys = new WeakMap<object, string>();

/**
 * `stableJson`, remembered for a frozen object: what the store hands out is deeply frozen, and
 * the tasks a pass creates share their service's TaskTemplate object, so comparing 10,000 tasks'
 * specs with the template costs one serialization, not 10,000 (the updater's check of every
 * task of a service on each of its events was 2 % of the leader's CPU in bench:cluster). Only
 * for objects that cannot change under the cache: the store's (deeply frozen); anything not
 * frozen is serialized each time.
 */
export function specKey(v: unknown): string {
  if (v === null || typeof v !== 'object' || !Object.isFrozen(v)) return stableJson(v);
  let k = frozenKeys.get(v);
  if (k === undefined) {
    k = stableJson(v);
    frozenKeys.set(v, k);
  }
  return k;
}

/** A task is dirty when it was made from a different task template than the service's current one. */
export function isTaskDirty(service: Service, t: Task, templateKey = specKey(service.Spec.TaskTemplate)): boolean {
  return specKey(t.Spec) !== templateKey;
}

/** "slot:3" for replicated tasks, "node:<id>" for global ones (Slot 0). */
export function slotKey(t: Pick<Task, 'Slot' | 'NodeID'>): string {
  return t.Slot > 0 ? `slot:${t.Slot}` : `node:${t.NodeID}`;
}

/** Newest first: by creation time, then ID (IDs are random, so only to make the order total). */
export function newestFirst(a: Task, b: Task): number {
  if (a.CreatedAt !== b.CreatedAt) return a.CreatedAt < b.CreatedAt ? 1 : -1;
  return a.ID < b.ID ? 1 : a.ID > b.ID ? -1 : 0;
}

export function groupBySlot(tasks: readonly Task[]): Map<string, Task[]> {
  const out = new Map<string, Task[]>();
  for (const t of tasks) {
    const k = slotKey(t);
    let l = out.get(k);
    if (l === undefined) out.set(k, (l = []));
    l.push(t);
  }
  return out;
}

export type SlotCondition =
  /** A task in it is wanted (desired ≤ RUNNING). */
  | 'runnable'
  /** Its last task ended on its own and the restart policy said no; it stays empty until the spec changes. */
  | 'settled'
  /** Nothing wanted in it (stopped by the manager, or removed by a scale-down). */
  | 'empty';

/**
 * How an orchestrator should count a slot. `settled` is decided from the store alone (so a new
 * leader counts the same): the newest task was shut down by the restart supervisor after it
 * ended on its own (complete/failed/rejected), and it was made from the current spec.
 */
export function slotCondition(service: Service, tasks: readonly Task[], templateKey: string): SlotCondition {
  if (tasks.some(isRunnable)) return 'runnable';
  const newest = [...tasks].sort(newestFirst)[0];
  if (newest === undefined || newest.DesiredState !== 'shutdown') return 'empty';
  if (!endedOnItsOwn(newest.Status.State)) return 'empty';
  return isTaskDirty(service, newest, templateKey) ? 'empty' : 'settled';
}
