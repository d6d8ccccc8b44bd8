// The global orchestrator: one task of every global service on every eligible node.
//
// Eligible = status ready, availability active, the service's constraints and image platforms
// met (parsed and matched by the scheduler's own code). Per service, per node:
// - eligible and its slot (the node's tasks of the service) is empty → a new task with the node
//   preset (the scheduler only confirms it fits);
// - drained, constraints no longer met, or the node removed → its tasks are shut down;
// - paused → existing tasks stay, no new ones;
// - down → left to the restart supervisor (orphaned, not replaced); when it is ready again the
//   slot is empty and a new task starts.
// A slot whose last task ended on its own and was not restarted (restart policy) stays settled.
import { nodeMatches, parseConstraints, platformSupported, type Constraint } from '../../scheduler/index.js';
import { toSchedulerNode } from '../schedule/node-view.js';
import type { ReadTx, Tx } from '../store/memory-store.js';
import { byServiceId } from '../store/query.js';
import type { Node, Service, Task } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { MAX_WRITES_PER_TX, ReconcileLoop, type LoopOptions } from './loop.js';
import { retire, stopTask } from './replicated.js';
import { newTask, serviceMode, slotCondition, specKey } from './service-model.js';
import { isRunnable } from './task-state.js';

export type NodeFit = 'eligible' | 'keep' | 'stop' | 'down';

/** What a node means for a service's global tasks. Unparsable constraints match no node. */
export function nodeFit(node: Node, constraints: readonly Constraint[] | null, svc: Service): NodeFit {
  if (node.Status.State === 'down') return 'down';
  const fits =
    constraints !== null &&
    nodeMatches(constraints, toSchedulerNode(node)) &&
    platformSupported(svc.Spec.TaskTemplate.Placement?.Platforms ?? [], node.Description?.Platform);
  if (!fits || node.Spec.Availability === 'drain') return 'stop';
  if (node.Spec.Availability === 'active' && node.Status.State === 'ready') return 'eligible';
  return 'keep';
}

export function constraintsOf(svc: Service): Constraint[] | null {
  try {
    return parseConstraints(svc.Spec.TaskTemplate.Placement?.Constraints ?? []);
  } catch {
    return null;
  }
}

export class GlobalOrchestrator extends ReconcileLoop {
  private readonly known = new Set<string>();

  constructor(opts: LoopOptions) {
    super(opts, 'global-orchestrator', ['service', 'node', 'task']);
  }

  protected resync(tx: ReadTx): void {
    this.known.clear();
    for (const s of tx.find('service')) if (serviceMode(s.Spec) === 'global') this.known.add(s.ID);
  }

  protected onEvent(ev: ChangeEvent): void {
    if (ev.kind === 'service') {
      const mine = serviceMode(ev.object.Spec) === 'global';
      if (ev.action === 'delete') {
        if (mine) this.markDirty(ev.object.ID);
        return;
      }
      if (mine) this.known.add(ev.object.ID);
      if (mine || this.known.has(ev.object.ID)) this.markDirty(ev.object.ID);
      return;
    }
    if (ev.kind === 'node') {
      // Joins, leaves, drains, label changes: every global service may gain or lose a task.
      for (const id of this.known) this.markDirty(id);
      return;
    }
    if (ev.kind !== 'task' || !this.known.has(ev.object.ServiceID)) return;
    if (ev.action === 'delete' || (ev.action === 'update' && ev.old?.DesiredState !== ev.object.DesiredState)) this.markDirty(ev.object.ServiceID);
  }

  protected async pass(keys: ReadonlySet<string>, all: boolean): Promise<void> {
    const ids = new Set(all ? [...this.known, ...keys] : keys);
    const nowIso = new Date(this.clock.now()).toISOString();
    const left = { writes: MAX_WRITES_PER_TX };
    const unfinished: string[] = [];
    await this.store.update((tx) => {
      const nodes = tx.find('node');
      for (const id of ids) if (left.writes <= 0 || !this.reconcileService(tx, id, nodes, nowIso, left)) unfinished.push(id);
    });
    for (const id of unfinished) this.markDirty(id);
  }

  private reconcileService(tx: Tx, serviceId: string, nodes: readonly Node[], nowIso: string, left: { writes: number }): boolean {
    const svc = tx.get('service', serviceId);
    const tasks = tx.find('task', byServiceId(serviceId)).filter((t) => t.Slot === 0);
    if (svc === undefined || serviceMode(svc.Spec) !== 'global') {
      this.known.delete(serviceId);
      return retire(tx, tasks, left);
    }
    const constraints = constraintsOf(svc);
    const templateKey = specKey(svc.Spec.TaskTemplate);
    const byNode = new Map<string, Task[]>();
    for (const t of tasks) {
      let l = byNode.get(t.NodeID);
      if (l === undefined) byNode.set(t.NodeID, (l = []));
      l.push(t);
    }
    for (const node of nodes) {
      const fit = nodeFit(node, constraints, svc);
      const here = byNode.get(node.ID) ?? [];
      if (fit === 'eligible' && slotCondition(svc, here, templateKey) === 'empty') {
        if (left.writes <= 0) return false;
        tx.create('task', newTask(svc, { slot: 0, nodeId: node.ID, desired: 'running', nowIso }));
        left.writes--;
      } else if (fit === 'stop') {
        for (const t of here.filter(isRunnable)) {
          if (left.writes <= 0) return false;
          tx.update('task', stopTask(t, 'shutdown'));
          left.writes--;
        }
      }
    }
    // Tasks on nodes that no longer exist are the restart supervisor's (orphaned, like a node down).
    return true;
  }
}
