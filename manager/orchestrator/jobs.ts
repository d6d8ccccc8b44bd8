// The jobs orchestrator: services that run to completion.
//
// - replicated-job: TotalCompletions tasks must complete (default MaxConcurrent), at most
//   MaxConcurrent (default 1) at a time. Slots 1..TotalCompletions; a slot is done when a task in
//   it completed, or when its task failed and the restart policy let it rest (settled).
// - global-job: one task per eligible node (also nodes that join later) until it completes.
// Job tasks are created with desired state COMPLETE; a completed task is never restarted (the
// restart supervisor only looks at job tasks that ended in anything but COMPLETE).
//
// Iterations: Service.JobStatus.JobIteration names the current run; every task carries the
// iteration it belongs to (Task.JobIteration). This loop sets JobStatus when a job service has
// none, and starts a new iteration when the task template changes (including ForceUpdate —
// `docker service update --force` re-runs a job); tasks of older iterations still running are
// removed. The control API may bump JobIteration itself (as swarmkit's does on every update).
import type { ReadTx, Tx } from '../store/memory-store.js';
import { byServiceId } from '../store/query.js';
import type { Node, Service, Task, Version } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { constraintsOf, nodeFit } from './global.js';
import { MAX_WRITES_PER_TX, ReconcileLoop, type LoopOptions } from './loop.js';
import { retire, stopTask } from './replicated.js';
import { groupBySlot, isJob, isTaskDirty, newTask, serviceMode, slotCondition, specKey } from './service-model.js';
import { isTerminal } from './task-state.js';

/** A job service as stored: Docker's `JobStatus` next to the spec. */
export type JobService = Service & { readonly JobStatus?: { readonly JobIteration: Version; readonly LastExecution?: string } };

function activeJobTask(t: Task): boolean {
  return (t.DesiredState === 'ready' || t.DesiredState === 'running' || t.DesiredState === 'complete') && t.Status.State !== 'complete';
}

export class JobsOrchestrator extends ReconcileLoop {
  private readonly known = new Set<string>();

  constructor(opts: LoopOptions) {
    super(opts, 'jobs-orchestrator', ['service', 'task', 'node']);
  }

  protected resync(tx: ReadTx): void {
    this.known.clear();
    for (const s of tx.find('service')) if (isJob(serviceMode(s.Spec))) this.known.add(s.ID);
  }

  protected onEvent(ev: ChangeEvent): void {
    if (ev.kind === 'service') {
      const mine = isJob(serviceMode(ev.object.Spec));
      if (mine && ev.action !== 'delete') this.known.add(ev.object.ID);
      if (mine || this.known.has(ev.object.ID)) this.markDirty(ev.object.ID);
      return;
    }
    if (ev.kind === 'node') {
      for (const id of this.known) if (serviceMode(this.store.get('service', id)?.Spec ?? { Name: '', TaskTemplate: {} }) === 'global-job') this.markDirty(id);
      return;
    }
    if (ev.kind === 'task' && this.known.has(ev.object.ServiceID)) {
      // A task completing frees a place; a desired-state change may settle or free a slot.
      if (ev.action !== 'update' || ev.old?.Status.State !== ev.object.Status.State || ev.old.DesiredState !== ev.object.DesiredState) this.markDirty(ev.object.ServiceID);
    }
  }

  protected async pass(keys: ReadonlySet<string>, all: boolean): Promise<void> {
    const ids = new Set(all ? [...this.known, ...keys] : keys);
    const nowIso = new Date(this.clock.now()).toISOString();
    const left = { writes: MAX_WRITES_PER_TX };
    const unfinished: string[] = [];
    await this.store.update((tx) => {
      const nodes = tx.find('node');
      for (const id of ids) if (left.writes <= 0 || !this.reconcile(tx, id, nodes, nowIso, left)) unfinished.push(id);
    });
    for (const id of unfinished) this.markDirty(id);
  }

  private reconcile(tx: Tx, serviceId: string, nodes: readonly Node[], nowIso: string, left: { writes: number }): boolean {
    const svc = tx.get('service', serviceId) as JobService | undefined;
    const tasks = tx.find('task', byServiceId(serviceId));
    if (svc === undefined || !isJob(serviceMode(svc.Spec))) {
      this.known.delete(serviceId);
      return retire(tx, svc === undefined ? tasks : tasks.filter((t) => t.JobIteration !== undefined), left);
    }
    const templateKey = specKey(svc.Spec.TaskTemplate);
    let iteration = svc.JobStatus?.JobIteration.Index;
    const ofIteration = (i: number | undefined): Task[] => tasks.filter((t) => t.JobIteration?.Index === i);
    const stale = iteration !== undefined && ofIteration(iteration).some((t) => isTaskDirty(svc, t, templateKey));
    if (iteration === undefined || (stale && svc.Version.Index !== iteration)) {
      iteration = svc.Version.Index;
      tx.update('service', { ...svc, JobStatus: { JobIteration: { Index: iteration }, LastExecution: nowIso } } as JobService);
      left.writes--;
    }
    // Earlier iterations' tasks still going: removed.
    for (const t of tasks) {
      if (t.JobIteration?.Index === iteration || !activeJobTask(t) || isTerminal(t.Status.State)) continue;
      if (left.writes <= 0) return false;
      tx.update('task', stopTask(t, 'remove'));
      left.writes--;
    }
    const current = ofIteration(iteration);
    return serviceMode(svc.Spec) === 'replicated-job'
      ? this.replicatedJob(tx, svc, current, iteration, templateKey, nowIso, left)
      : this.globalJob(tx, svc, current, iteration, nodes, nowIso, left);
  }

  private replicatedJob(tx: Tx, svc: Service, current: Task[], iteration: number, templateKey: string, nowIso: string, left: { writes: number }): boolean {
    const rj = svc.Spec.Mode!.ReplicatedJob!;
    const maxConcurrent = Math.max(1, rj.MaxConcurrent ?? 1);
    const total = Math.max(0, rj.TotalCompletions ?? maxConcurrent);
    const used = new Set<number>();
    let active = 0;
    let done = 0;
    for (const [key, list] of groupBySlot(current)) {
      const slot = Number(key.slice(5));
      if (list.some((t) => t.Status.State === 'complete')) {
        done++;
        used.add(slot);
      } else if (list.some(activeJobTask)) {
        active++;
        used.add(slot);
      } else if (slotCondition(svc, list, templateKey) === 'settled') {
        done++; // failed, and the restart policy let it rest
        used.add(slot);
      }
    }
    const create = Math.max(0, Math.min(maxConcurrent - active, total - done - active));
    let slot = 1;
    for (let i = 0; i < create; i++) {
      if (left.writes <= 0) return false;
      while (used.has(slot)) slot++;
      used.add(slot);
      tx.create('task', newTask(svc, { slot, desired: 'complete', nowIso, jobIteration: iteration }));
      left.writes--;
    }
    return true;
  }

  private globalJob(tx: Tx, svc: Service, current: Task[], iteration: number, nodes: readonly Node[], nowIso: string, left: { writes: number }): boolean {
    const constraints = constraintsOf(svc);
    for (const node of nodes) {
      const here = current.filter((t) => t.NodeID === node.ID);
      const fit = nodeFit(node, constraints, svc);
      if (fit === 'eligible' && here.length === 0) {
        if (left.writes <= 0) return false;
        tx.create('task', newTask(svc, { slot: 0, nodeId: node.ID, desired: 'complete', nowIso, jobIteration: iteration }));
        left.writes--;
      } else if (fit === 'stop') {
        for (const t of here.filter((x) => activeJobTask(x) && !isTerminal(x.Status.State))) {
          if (left.writes <= 0) return false;
          tx.update('task', stopTask(t, 'shutdown'));
          left.writes--;
        }
      }
    }
    return true;
  }
}
