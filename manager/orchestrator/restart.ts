// The restart supervisor: replaces tasks that ended while they were still wanted, as the
// service's restart policy says, and tasks stranded on nodes that went down.
//
// - A task whose observed state became terminal while its desired state still wanted it
//   (≤ RUNNING; ≤ COMPLETE and not COMPLETE for jobs) is shut down (desired SHUTDOWN) and, when
//   the policy allows, replaced in one transaction by a new task in the same slot (on the same
//   node for global services) made from the service's current spec. Policy: condition
//   none | on-failure | any (default any; jobs treat any as on-failure), MaxAttempts restarts
//   within Window (in memory, per slot and spec: a new leader starts counting again).
// - Delay: the replacement is created at once with desired state READY (the scheduler places it,
//   the worker may prepare it) and promoted to RUNNING (COMPLETE for jobs) once the delay has
//   passed on the clock and every other task of its slot has stopped. Stop-first updates use the
//   same promotion with no delay.
// - A node that goes down (or is removed): its tasks that are still wanted are marked ORPHANED
//   (desired SHUTDOWN); tasks of replicated services and replicated jobs are replaced at once in
//   the same slot with no node, so the scheduler puts them elsewhere. Global tasks are not: the
//   global orchestrator starts one again when the node is eligible again.
import type { ReadTx, Tx } from '../store/memory-store.js';
import { byNodeId, bySlot, byServiceId } from '../store/query.js';
import type { Node, Task, TaskState } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { MAX_WRITES_PER_TX, ReconcileLoop, type LoopOptions } from './loop.js';
import { isJob, isGlobalLike, newTask, restartPolicyOf, serviceMode, slotKey, specKey as jsonKey } from './service-model.js';
import { isAlive, isTerminal, reachedNode } from './task-state.js';

/** Most restart records kept per slot (enough for any sensible MaxAttempts). */
const MAX_HISTORY_PER_SLOT = 100;
/** Most slots with restart records; the oldest are forgotten beyond it. */
const MAX_HISTORY_SLOTS = 100_000;

interface SlotHistory {
  specKey: string;
  restartsMs: number[];
}

/** Is this task still wanted by its desired state, given what kind of service it belongs to? */
function wanted(t: Task, job: boolean): boolean {
  if (t.DesiredState === 'ready' || t.DesiredState === 'running') return true;
  return job && t.DesiredState === 'complete';
}

/** Ended while wanted: the supervisor must decide about it. */
export function needsRestartDecision(t: Task, job: boolean): boolean {
  if (!wanted(t, job) || !isTerminal(t.Status.State)) return false;
  return !(job && t.Status.State === 'complete');
}

export class RestartSupervisor extends ReconcileLoop {
  private readonly history = new Map<string, SlotHistory>();
  /** Task ID → earliest start (clock ms) of a delayed task. */
  private readonly notBefore = new Map<string, number>();

  constructor(opts: LoopOptions) {
    super(opts, 'restart-supervisor', ['task', 'node']);
  }

  protected resync(tx: ReadTx): void {
    // The pass with `all` looks at every task and node; nothing to note here.
    void tx;
  }

  protected onEvent(ev: ChangeEvent): void {
    if (ev.kind === 'node') {
      if (ev.action === 'delete' || ev.object.Status.State === 'down') this.markDirty(`node:${ev.object.ID}`);
      return;
    }
    if (ev.kind !== 'task') return;
    const t = ev.object;
    if (ev.action === 'delete') {
      this.notBefore.delete(t.ID);
      this.markDirty(`slot:${t.ServiceID}|${slotKey(t)}`);
      return;
    }
    if (t.DesiredState === 'ready') this.markDirty(`ready:${t.ID}`);
    if (isTerminal(t.Status.State)) {
      if (ev.old === undefined || !isTerminal(ev.old.Status.State) || ev.old.DesiredState !== t.DesiredState) this.markDirty(`task:${t.ID}`);
      // Its slot may hold a task waiting for this one to stop.
      this.markDirty(`slot:${t.ServiceID}|${slotKey(t)}`);
    }
  }

  protected async pass(keys: ReadonlySet<string>, all: boolean): Promise<void> {
    const taskIds = new Set<string>();
    const nodeIds = new Set<string>();
    const readyIds = new Set<string>();
    if (all) {
      for (const t of this.store.find('task')) {
        if (t.DesiredState === 'ready') readyIds.add(t.ID);
        if (isTerminal(t.Status.State)) taskIds.add(t.ID);
        else if (t.NodeID !== '') {
          const n = this.store.get('node', t.NodeID);
          if (n === undefined || n.Status.State === 'down') nodeIds.add(t.NodeID);
        }
      }
    }
    for (const k of keys) {
      const [kind, rest] = splitKey(k);
      if (kind === 'task') taskIds.add(rest);
      else if (kind === 'node') nodeIds.add(rest);
      else if (kind === 'ready') readyIds.add(rest);
      else if (kind === 'slot') {
        const [serviceId, sk] = rest.split('|') as [string, string];
        for (const t of slotTasks(this.store, serviceId, sk)) if (t.DesiredState === 'ready') readyIds.add(t.ID);
      }
    }
    if (taskIds.size === 0 && nodeIds.size === 0 && readyIds.size === 0) return;

    const left = { writes: MAX_WRITES_PER_TX };
    const deferred: string[] = [];
    const nowMs = this.clock.now();
    const nowIso = new Date(nowMs).toISOString();
    const newDelays: { id: string; atMs: number }[] = [];
    const historyNotes: { key: string; specKey: string }[] = [];
    await this.store.update((tx) => {
      for (const id of nodeIds) {
        if (left.writes <= 0) {
          deferred.push(`node:${id}`);
          continue;
        }
        this.handleNodeDown(tx, id, nowIso, left);
      }
      for (const id of taskIds) {
        if (left.writes <= 0) {
          deferred.push(`task:${id}`);
          continue;
        }
        const d = this.handleEndedTask(tx, id, nowMs, nowIso, left);
        if (d !== null) {
          if (d.delayMs > 0) newDelays.push({ id: d.newTaskId, atMs: nowMs + d.delayMs });
          historyNotes.push({ key: d.historyKey, specKey: d.specKey });
        }
      }
      for (const id of readyIds) {
        if (left.writes <= 0) {
          deferred.push(`ready:${id}`);
          continue;
        }
        this.promoteIfDue(tx, id, nowMs, left, newDelays);
      }
    });
    for (const n of historyNotes) this.noteRestart(n.key, n.specKey, nowMs);
    for (const d of newDelays) this.wakeAfter(`ready:${d.id}`, d.atMs - nowMs);
    for (const k of deferred) this.markDirty(k);
  }

  /** Tasks wanted on a node that is down or gone: orphaned, and replaced elsewhere unless global. */
  private handleNodeDown(tx: Tx, nodeId: string, nowIso: string, left: { writes: number }): void {
    const node = tx.get('node', nodeId);
    if (node !== undefined && node.Status.State !== 'down') return;
    for (const t of tx.find('task', byNodeId(nodeId))) {
      const svc = tx.get('service', t.ServiceID);
      const mode = svc === undefined ? 'replicated' : serviceMode(svc.Spec);
      if (!wanted(t, isJob(mode)) || isTerminal(t.Status.State)) continue;
      tx.update('task', {
        ...t,
        DesiredState: 'shutdown',
        Status: { ...t.Status, State: 'orphaned', Message: `node ${nodeName(node, nodeId)} is down`, Timestamp: nowIso },
      });
      left.writes--;
      if (svc === undefined || isGlobalLike(mode)) continue;
      // A start-first update may already have another task in this slot: it takes over.
      if (slotTasks(tx, svc.ID, slotKey(t)).some((o) => o.ID !== t.ID && wanted(o, isJob(mode)))) continue;
      tx.create('task', {
        ...newTask(svc, { slot: t.Slot, desired: t.DesiredState === 'complete' ? 'complete' : 'running', nowIso }),
        ...(t.JobIteration !== undefined ? { JobIteration: t.JobIteration } : {}),
      });
      left.writes--;
    }
  }

  private handleEndedTask(
    tx: Tx,
    id: string,
    nowMs: number,
    nowIso: string,
    left: { writes: number },
  ): { newTaskId: string; delayMs: number; historyKey: string; specKey: string } | null {
    const t = tx.get('task', id);
    if (t === undefined) return null;
    const svc = tx.get('service', t.ServiceID);
    if (svc === undefined) return null;
    const mode = serviceMode(svc.Spec);
    const job = isJob(mode);
    if (!needsRestartDecision(t, job)) return null;
    // Another task already took over the slot (e.g. an update replaced it): just retire this one.
    const policy = restartPolicyOf(svc.Spec);
    const specKey = jsonKey(svc.Spec.TaskTemplate);
    const historyKey = `${svc.ID}|${slotKey(t)}`;
    const others = slotTasks(tx, svc.ID, slotKey(t)).filter((o) => o.ID !== t.ID && wanted(o, job));
    tx.update('task', { ...t, DesiredState: 'shutdown' });
    left.writes--;
    if (others.length > 0) return null;
    if (!this.shouldRestart(t, policy, historyKey, specKey, nowMs)) {
      this.log.info({ task: t.ID, service: svc.Spec.Name, slot: slotKey(t), state: t.Status.State }, 'task ended; restart policy says no restart');
      return null;
    }
    const finalDesired: TaskState = job ? 'complete' : 'running';
    const desired: TaskState = policy.delayMs > 0 ? 'ready' : finalDesired;
    const created = tx.create('task', {
      ...newTask(svc, { slot: t.Slot, nodeId: isGlobalLike(mode) ? t.NodeID : '', desired, nowIso }),
      ...(t.JobIteration !== undefined ? { JobIteration: t.JobIteration } : {}),
    });
    left.writes--;
    // Noted before the commit so a promotion check in this same pass cannot start it early.
    if (policy.delayMs > 0) this.notBefore.set(created.ID, nowMs + policy.delayMs);
    this.log.info({ task: t.ID, replacement: created.ID, service: svc.Spec.Name, delayMs: policy.delayMs }, 'restarting task');
    return { newTaskId: created.ID, delayMs: policy.delayMs, historyKey, specKey };
  }

  private shouldRestart(t: Task, policy: ReturnType<typeof restartPolicyOf>, historyKey: string, specKey: string, nowMs: number): boolean {
    if (policy.condition === 'none') return false;
    if (policy.condition === 'on-failure' && t.Status.State === 'complete') return false;
    if (policy.maxAttempts === 0) return true;
    const h = this.history.get(historyKey);
    if (h === undefined || h.specKey !== specKey) return true;
    const recent = policy.windowMs === 0 ? h.restartsMs.length : h.restartsMs.filter((ms) => nowMs - ms <= policy.windowMs).length;
    return recent < policy.maxAttempts;
  }

  private noteRestart(key: string, specKey: string, nowMs: number): void {
    let h = this.history.get(key);
    if (h === undefined || h.specKey !== specKey) {
      if (h === undefined && this.history.size >= MAX_HISTORY_SLOTS) {
        const oldest = this.history.keys().next().value;
        if (oldest !== undefined) this.history.delete(oldest);
      }
      h = { specKey, restartsMs: [] };
      this.history.set(key, h);
    }
    h.restartsMs.push(nowMs);
    if (h.restartsMs.length > MAX_HISTORY_PER_SLOT) h.restartsMs.shift();
  }

  /** READY → RUNNING (COMPLETE for jobs) once its delay passed and the rest of its slot stopped. */
  private promoteIfDue(tx: Tx, id: string, nowMs: number, left: { writes: number }, newDelays: { id: string; atMs: number }[]): void {
    const t = tx.get('task', id);
    if (t === undefined || t.DesiredState !== 'ready') {
      this.notBefore.delete(id);
      return;
    }
    const svc = tx.get('service', t.ServiceID);
    if (svc === undefined) return;
    let at = this.notBefore.get(id);
    if (at === undefined) {
      // Not delayed by this supervisor: a stop-first update's replacement, or a restart a former
      // leader delayed (its remaining delay is not known here; it starts once its slot is free).
      at = nowMs;
      this.notBefore.set(id, at);
    }
    if (nowMs < at) {
      newDelays.push({ id, atMs: at });
      return;
    }
    const blocking = slotTasks(tx, t.ServiceID, slotKey(t)).filter((o) => o.ID !== t.ID && stillOccupies(tx, o));
    if (blocking.length > 0) return; // their stop marks the slot dirty again
    tx.update('task', { ...t, DesiredState: isJob(serviceMode(svc.Spec)) ? 'complete' : 'running' });
    left.writes--;
    this.notBefore.delete(id);
  }
}

/** The tasks of one slot ("slot:N" or "node:<id>") of a service. */
function slotTasks(tx: ReadTx, serviceId: string, sk: string): Task[] {
  if (sk.startsWith('slot:')) return tx.find('task', bySlot(serviceId, Number(sk.slice(5))));
  const nodeId = sk.slice(5);
  return tx.find('task', byServiceId(serviceId)).filter((t) => t.Slot === 0 && t.NodeID === nodeId);
}

/** A task that may still be running on a live node, so a replacement must not start yet. */
function stillOccupies(tx: ReadTx, t: Task): boolean {
  if (!isAlive(t) || !reachedNode(t)) return false;
  const n = tx.get('node', t.NodeID);
  return n !== undefined && n.Status.State !== 'down';
}

function nodeName(n: Node | undefined, id: string): string {
  return n?.Description?.Hostname ?? n?.Spec.Name ?? id;
}

function splitKey(k: string): [string, string] {
  const i = k.indexOf(':');
  return [k.slice(0, i), k.slice(i + 1)];
}

