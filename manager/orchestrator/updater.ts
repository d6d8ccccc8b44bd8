// The rolling updater: replaces tasks made from an older spec, a batch at a time, following the
// service's UpdateConfig (RollbackConfig while rolling back), and keeps Service.UpdateStatus.
//
// Update state machine (Service.UpdateStatus.State):
//
//   (none | completed | rollback_completed) ──dirty slots──► updating ──all replaced + Monitor──► completed
//        updating ──failures/dirty > MaxFailureRatio──► paused              (FailureAction pause)
//                                                   └─► rollback_started    (FailureAction rollback:
//                                                        Spec ← PreviousSpec)
//   rollback_started ──all replaced + Monitor──► rollback_completed
//   rollback_started ──failures──► rollback_paused    (a rollback is never rolled back)
//   paused | rollback_paused: nothing happens until the control API changes the spec and clears
//   UpdateStatus (a new update) or sets rollback_started (`docker service rollback`).
//
// A pass per service (on its events and on its timers) advances the run one step:
//   count failures of tasks this run made (ended on their own before RUNNING or within Monitor
//   of reaching it) → act if over the ratio; the batch in flight done (every new task RUNNING or
//   ended)? → wait Delay → next batch of Parallelism dirty slots (0 = all); none left → wait
//   Monitor → completed.
// Replacing a slot: stop-first — old task desired SHUTDOWN and a new task desired READY in one
// transaction; the restart supervisor promotes it to RUNNING once the old one stopped.
// start-first — a new task desired RUNNING; the old one is shut down once the new one runs.
//
// What a run remembers (tasks it made, failures seen, timers) is in memory: a new leader starts
// a fresh run for a service still marked updating, over the slots that are still dirty.
import type { ReadTx, Tx } from '../store/memory-store.js';
import { byServiceId } from '../store/query.js';
import type { Service, Task, UpdateState } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { ReconcileLoop, type LoopOptions } from './loop.js';
import { stopTask } from './replicated.js';
import { groupBySlot, isGlobalLike, isJob, isTaskDirty, newTask, serviceMode, specKey, updateConfigOf, type EffectiveUpdateConfig } from './service-model.js';
import { endedOnItsOwn, isRunnable, isTerminal } from './task-state.js';

/** Most services updated at once; others wait for a later pass. */
const MAX_CONCURRENT_RUNS = 1_000;

interface UpdateRun {
  readonly templateKey: string;
  readonly rollback: boolean;
  readonly cfg: EffectiveUpdateConfig;
  /** Dirty slots when the run began: the denominator of the failure ratio. */
  readonly totalDirty: number;
  /** Tasks this run made → when they were first seen RUNNING (null: not yet). */
  readonly tracked: Map<string, number | null>;
  readonly failures: Set<string>;
  /** Slot key → the task replacing it, for the batch in flight. */
  batch: Map<string, string> | null;
  nextBatchAtMs: number;
  monitorUntilMs: number | null;
}

export class Updater extends ReconcileLoop {
  private readonly runs = new Map<string, UpdateRun>();

  constructor(opts: LoopOptions) {
    super(opts, 'updater', ['service', 'task']);
  }

  /** Services with an update in progress here (tests, logs). */
  get activeRuns(): number {
    return this.runs.size;
  }

  protected resync(_tx: ReadTx): void {}

  protected onEvent(ev: ChangeEvent): void {
    if (ev.kind === 'service') {
      this.markDirty(ev.object.ID);
      return;
    }
    if (ev.kind === 'task' && this.runs.has(ev.object.ServiceID)) this.markDirty(ev.object.ServiceID);
  }

  protected async pass(keys: ReadonlySet<string>, all: boolean): Promise<void> {
    const ids = new Set(keys);
    if (all) for (const s of this.store.find('service')) if (!isJob(serviceMode(s.Spec))) ids.add(s.ID);
    for (const id of ids) {
      if (this.isStopped) return;
      if (!this.runs.has(id) && this.runs.size >= MAX_CONCURRENT_RUNS) {
        this.wakeAfter(id, 1_000);
        continue;
      }
      await this.step(id);
    }
  }

  private async step(serviceId: string): Promise<void> {
    const svc = this.store.get('service', serviceId);
    if (svc === undefined || isJob(serviceMode(svc.Spec))) {
      this.runs.delete(serviceId);
      return;
    }
    const state = svc.UpdateStatus?.State;
    if (state === 'paused' || state === 'rollback_paused') {
      this.runs.delete(serviceId);
      return;
    }
    const templateKey = specKey(svc.Spec.TaskTemplate);
    let run = this.runs.get(serviceId);
    if (run !== undefined && run.templateKey !== templateKey) {
      // The spec changed under the run (a new update, or the rollback this run started).
      this.runs.delete(serviceId);
      run = undefined;
    }
    const now = this.clock.now();
    if (run === undefined) {
      const dirty = dirtySlots(svc, this.store, templateKey);
      const inProgress = state === 'updating' || state === 'rollback_started';
      if (dirty.length === 0) {
        if (inProgress) await this.finish(svc, state === 'rollback_started');
        return;
      }
      const rollback = state === 'rollback_started';
      run = {
        templateKey,
        rollback,
        cfg: updateConfigOf(rollback ? svc.Spec.RollbackConfig : svc.Spec.UpdateConfig),
        totalDirty: dirty.length,
        tracked: new Map(),
        failures: new Set(),
        batch: null,
        nextBatchAtMs: now,
        monitorUntilMs: null,
      };
      this.runs.set(serviceId, run);
      if (!inProgress) await this.setStatus(svc, { State: 'updating', StartedAt: iso(now), Message: 'update in progress' });
      this.log.info({ service: svc.Spec.Name, slots: dirty.length, rollback, cfg: run.cfg }, 'update started');
    }

    if (await this.checkFailures(svc, run, now)) return;

    if (run.batch !== null) {
      if (!(await this.batchDone(svc, run))) return;
      run.batch = null;
      // Delay separates batches; after the last one the monitor period follows at once.
      run.nextBatchAtMs = dirtySlots(svc, this.store, templateKey).length > 0 ? now + run.cfg.delayMs : now;
    }
    if (now < run.nextBatchAtMs) {
      this.wakeAfter(serviceId, run.nextBatchAtMs - now);
      return;
    }
    const dirty = dirtySlots(svc, this.store, templateKey);
    if (dirty.length > 0) {
      run.monitorUntilMs = null;
      await this.startBatch(svc, run, dirty);
      return;
    }
    run.monitorUntilMs ??= now + run.cfg.monitorMs;
    if (now < run.monitorUntilMs) {
      this.wakeAfter(serviceId, run.monitorUntilMs - now);
      return;
    }
    this.runs.delete(serviceId);
    await this.finish(svc, run.rollback);
  }

  /** True when the run ended (paused or rolled back). */
  private async checkFailures(svc: Service, run: UpdateRun, now: number): Promise<boolean> {
    let failed: string | null = null;
    for (const [id, since] of run.tracked) {
      const t = this.store.get('task', id);
      if (t === undefined || run.failures.has(id)) continue;
      if (t.Status.State === 'running' && since === null) {
        run.tracked.set(id, now);
        continue;
      }
      if (!isTerminal(t.Status.State) || !endedOnItsOwn(t.Status.State)) continue;
      if (since !== null && now - since > run.cfg.monitorMs) continue;
      run.failures.add(id);
      failed = id;
    }
    if (failed === null || run.cfg.failureAction === 'continue') return false;
    if (run.failures.size / run.totalDirty <= run.cfg.maxFailureRatio) return false;
    this.runs.delete(svc.ID);
    const why = `due to failure or early termination of task ${failed}`;
    if (run.cfg.failureAction === 'pause' || run.rollback) {
      this.log.warn({ service: svc.Spec.Name, task: failed }, run.rollback ? 'rollback paused' : 'update paused');
      await this.setStatus(svc, { State: run.rollback ? 'rollback_paused' : 'paused', Message: `${run.rollback ? 'rollback' : 'update'} paused ${why}` });
      return true;
    }
    this.log.warn({ service: svc.Spec.Name, task: failed }, 'update failed; rolling back');
    await this.store.update((tx) => {
      const cur = tx.get('service', svc.ID);
      if (cur === undefined) return;
      if (cur.PreviousSpec === undefined) {
        tx.update('service', { ...cur, UpdateStatus: { ...cur.UpdateStatus, State: 'paused', Message: `update paused ${why}; no previous spec to roll back to` } });
        return;
      }
      const { PreviousSpec: prev, ...rest } = cur;
      tx.update('service', { ...rest, Spec: prev, UpdateStatus: { ...cur.UpdateStatus, State: 'rollback_started', Message: `update rolled back ${why}` } });
    });
    return true;
  }

  /** Every task of the batch reached RUNNING or ended; start-first old tasks are shut down here. */
  private async batchDone(svc: Service, run: UpdateRun): Promise<boolean> {
    let done = true;
    const retire: Task[] = [];
    for (const [sk, id] of run.batch!) {
      const t = this.store.get('task', id);
      if (t !== undefined && !isTerminal(t.Status.State) && t.Status.State !== 'running') {
        done = false;
        continue;
      }
      if (t !== undefined && t.Status.State === 'running') {
        for (const o of slotOf(this.store, svc.ID, sk)) if (o.ID !== id && isRunnable(o)) retire.push(o);
      }
    }
    if (retire.length > 0) {
      await this.store.update((tx) => {
        for (const o of retire) {
          const cur = tx.get('task', o.ID);
          if (cur !== undefined && isRunnable(cur)) tx.update('task', stopTask(cur, 'shutdown'));
        }
      });
    }
    return done;
  }

  private async startBatch(svc: Service, run: UpdateRun, dirty: readonly string[]): Promise<void> {
    const n = run.cfg.parallelism === 0 ? dirty.length : Math.min(run.cfg.parallelism, dirty.length);
    const chosen = dirty.slice(0, n);
    const nowIso = iso(this.clock.now());
    const made = new Map<string, string>();
    await this.store.update((tx) => {
      const cur = tx.get('service', svc.ID);
      if (cur === undefined || specKey(cur.Spec.TaskTemplate) !== run.templateKey) return;
      for (const sk of chosen) {
        const id = replaceSlot(tx, cur, sk, run, nowIso);
        if (id !== null) made.set(sk, id);
      }
    });
    for (const id of made.values()) if (!run.tracked.has(id)) run.tracked.set(id, null);
    run.batch = made;
    this.log.debug({ service: svc.Spec.Name, slots: chosen }, 'update batch started');
  }

  private async finish(svc: Service, rollback: boolean): Promise<void> {
    const now = iso(this.clock.now());
    await this.setStatus(svc, { State: rollback ? 'rollback_completed' : 'completed', CompletedAt: now, Message: rollback ? 'rollback completed' : 'update completed' });
    this.log.info({ service: svc.Spec.Name, rollback }, 'update completed');
  }

  private async setStatus(svc: Service, s: { State: UpdateState; Message: string; StartedAt?: string; CompletedAt?: string }): Promise<void> {
    await this.store.update((tx) => {
      const cur = tx.get('service', svc.ID);
      if (cur === undefined) return;
      const base = s.State === 'updating' ? {} : (cur.UpdateStatus ?? {});
      tx.update('service', { ...cur, UpdateStatus: { ...base, ...s } });
    });
  }
}

/**
 * Starts replacing one slot; returns the task that will hold it. A slot that already has a task
 * of the new spec (e.g. the restart supervisor replaced a failed one) only has its old tasks shut down.
 */
function replaceSlot(tx: Tx, svc: Service, sk: string, run: UpdateRun, nowIso: string): string | null {
  const tasks = slotOf(tx, svc.ID, sk);
  const live = tasks.filter(isRunnable);
  const old = live.filter((t) => isTaskDirty(svc, t, run.templateKey));
  if (old.length === 0) return null;
  const clean = live.find((t) => !isTaskDirty(svc, t, run.templateKey));
  if (clean !== undefined) {
    for (const t of old) tx.update('task', stopTask(t, 'shutdown'));
    return clean.ID;
  }
  const first = old[0]!;
  const global = isGlobalLike(serviceMode(svc.Spec));
  const startFirst = run.cfg.order === 'start-first';
  if (!startFirst) for (const t of old) tx.update('task', stopTask(t, 'shutdown'));
  const created = tx.create('task', newTask(svc, { slot: first.Slot, nodeId: global ? first.NodeID : '', desired: startFirst ? 'running' : 'ready', nowIso }));
  return created.ID;
}

/** Slot keys holding a runnable task made from an older spec, in slot order. */
function dirtySlots(svc: Service, tx: ReadTx, templateKey: string): string[] {
  const groups = groupBySlot(tx.find('task', byServiceId(svc.ID)));
  const out: string[] = [];
  for (const [sk, tasks] of groups) if (tasks.some((t) => isRunnable(t) && isTaskDirty(svc, t, templateKey))) out.push(sk);
  return out.sort((a, b) => {
    const na = Number(a.slice(5));
    const nb = Number(b.slice(5));
    return Number.isNaN(na) || Number.isNaN(nb) ? (a < b ? -1 : a > b ? 1 : 0) : na - nb;
  });
}

function slotOf(tx: ReadTx, serviceId: string, sk: string): Task[] {
  return tx.find('task', byServiceId(serviceId)).filter((t) => (t.Slot > 0 ? `slot:${t.Slot}` : `node:${t.NodeID}`) === sk);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
