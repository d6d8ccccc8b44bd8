// The task reaper: keeps each slot's history short and deletes tasks nobody needs.
//
// - Per slot (service + slot number; service + node for global services) at most
//   Cluster.Spec.Orchestration.TaskHistoryRetentionLimit tasks are kept (default 5; negative =
//   keep all): the oldest that are finished — no longer wanted (desired past RUNNING, past
//   COMPLETE for jobs) and stopped (observed terminal, or never reached a node) — are deleted.
// - A task with desired state REMOVE (its slot was scaled away or its service deleted) is
//   deleted as soon as it has stopped, whatever the limit.
import type { ReadTx } from '../store/memory-store.js';
import { byDesiredState, bySlot, byServiceId } from '../store/query.js';
import type { Task } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { MAX_WRITES_PER_TX, ReconcileLoop, type LoopOptions } from './loop.js';
import { DEFAULT_TASK_HISTORY_RETENTION_LIMIT, newestFirst, slotKey } from './service-model.js';
import { isTerminal, reachedNode, stateRank } from './task-state.js';

/** Finished: no longer wanted and no longer (or never) alive on a node. */
export function isFinished(t: Task): boolean {
  if (stateRank(t.DesiredState) <= stateRank('complete')) return false;
  return isTerminal(t.Status.State) || !reachedNode(t);
}

export class TaskReaper extends ReconcileLoop {
  /**
   * Tasks per replicated slot (service + slot number), kept from the watch: a new task makes its
   * slot worth a look only once the slot holds more than the limit (a scale-up of 10,000 fresh
   * slots is not 10,000 index reads).
   */
  private readonly perSlot = new Map<string, number>();
  private limit = DEFAULT_TASK_HISTORY_RETENTION_LIMIT;

  constructor(opts: LoopOptions) {
    super(opts, 'task-reaper', ['task', 'cluster']);
  }

  protected resync(tx: ReadTx): void {
    this.perSlot.clear();
    for (const t of tx.find('task')) if (t.Slot > 0) this.count(t, 1);
    this.limit = retentionLimitOf(tx);
  }

  private count(t: Task, by: 1 | -1): number {
    const key = `${t.ServiceID}|${t.Slot}`;
    const n = (this.perSlot.get(key) ?? 0) + by;
    if (n > 0) this.perSlot.set(key, n);
    else this.perSlot.delete(key);
    return n;
  }

  protected onEvent(ev: ChangeEvent): void {
    if (ev.kind === 'cluster') {
      if (ev.action !== 'delete') this.markAll();
      return;
    }
    if (ev.kind !== 'task') return;
    if (ev.action === 'delete') {
      if (ev.object.Slot > 0) this.count(ev.object, -1);
      return;
    }
    let crowded = false;
    if (ev.action === 'create') {
      // Global tasks (slot 0) are keyed by node, which a task may only get later: always looked at.
      crowded = ev.object.Slot === 0 || (this.count(ev.object, 1) > this.limit && this.limit >= 0);
    }
    if (crowded || isFinished(ev.object)) this.markDirty(`${ev.object.ServiceID}|${slotKey(ev.object)}`);
  }

  get retentionLimit(): number {
    return retentionLimitOf(this.store);
  }

  protected async pass(keys: ReadonlySet<string>, all: boolean): Promise<void> {
    const limit = this.retentionLimit;
    this.limit = limit;
    const slots = new Set(keys);
    if (all) {
      for (const t of this.store.find('task')) slots.add(`${t.ServiceID}|${slotKey(t)}`);
    }
    const doomed: Task[] = [];
    const deferred: string[] = [];
    for (const key of slots) {
      if (doomed.length >= MAX_WRITES_PER_TX) {
        deferred.push(key);
        continue;
      }
      doomed.push(...this.victims(this.store, key, limit));
    }
    // Tasks of removed slots or deleted services, in case their slot key was never marked.
    if (all) for (const t of this.store.find('task', byDesiredState('remove'))) if (isFinished(t) && !doomed.includes(t)) doomed.push(t);
    const batch = doomed.slice(0, MAX_WRITES_PER_TX);
    if (batch.length > 0) {
      await this.store.update((tx) => {
        for (const t of batch) if (tx.get('task', t.ID) !== undefined) tx.delete('task', t.ID, t.Version.Index);
      });
      this.log.debug({ deleted: batch.length }, 'reaped tasks');
    }
    if (doomed.length > batch.length) this.markAll();
    for (const k of deferred) this.markDirty(k);
  }

  private victims(tx: ReadTx, key: string, limit: number): Task[] {
    const bar = key.indexOf('|');
    const serviceId = key.slice(0, bar);
    const sk = key.slice(bar + 1);
    const tasks = sk.startsWith('slot:')
      ? tx.find('task', bySlot(serviceId, Number(sk.slice(5))))
      : tx.find('task', byServiceId(serviceId)).filter((t) => t.Slot === 0 && t.NodeID === sk.slice(5));
    const out = tasks.filter((t) => t.DesiredState === 'remove' && isFinished(t));
    if (limit < 0) return out;
    const kept = tasks.filter((t) => !out.includes(t)).sort(newestFirst);
    let excess = kept.length - limit;
    for (let i = kept.length - 1; i >= 0 && excess > 0; i--) {
      const t = kept[i]!;
      if (!isFinished(t)) continue;
      out.push(t);
      excess--;
    }
    return out;
  }
}

function retentionLimitOf(tx: ReadTx): number {
  const c = tx.find('cluster')[0];
  const v = c?.Spec.Orchestration?.TaskHistoryRetentionLimit;
  return typeof v === 'number' ? Math.floor(v) : DEFAULT_TASK_HISTORY_RETENTION_LIMIT;
}
