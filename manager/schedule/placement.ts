// What the scheduler decides against, read from the store, and the placer the replicated
// orchestrator asks for a scale-up's nodes (`TaskPlacer`, manager/orchestrator/placer.ts).
//
//   clusterState(tx): nodes, tasks holding resources (placed), tasks waiting for a node (pending)
//        │
//        ├─► SchedulerLoop.pass: schedule(pending) → ASSIGNED, or the reason in Status.Err
//        └─► Placement.placeNew: schedule(a scale-up's tasks, not created yet) → created ASSIGNED
//
// Both decide under one lock (`exclusive`), from reading the state to the end of their commits,
// so neither decides against a view that lacks the other's writes in flight.
import { schedule } from '../../scheduler/index.js';
import type { GenericResource, PendingTask, PlacedTask, PortConfig, SchedulerNode } from '../../scheduler/index.js';
import type { Placed, PlacementWant, TaskPlacer } from '../orchestrator/placer.js';
import { holdsResources, isTerminal } from '../orchestrator/task-state.js';
import type { ReadTx } from '../store/memory-store.js';
import type { Service, Task } from '../store/types.js';
import { toSchedulerNode } from './node-view.js';

/** A task as the scheduler loop reads and writes it: the generic units it was given live on the task. */
export type TaskWithUnits = Task & { readonly AssignedGenericResources?: readonly GenericResource[] };

/** Wanted by its desired state: READY/RUNNING for services, COMPLETE for jobs. */
export function wantsNode(t: Task): boolean {
  return t.DesiredState === 'ready' || t.DesiredState === 'running' || t.DesiredState === 'complete';
}

export interface ClusterState {
  readonly nodes: SchedulerNode[];
  readonly placedTasks: PlacedTask[];
  readonly pendingTasks: PendingTask[];
  /** The store's pending tasks by ID (those in `pendingTasks`). */
  readonly pending: Map<string, TaskWithUnits>;
  /** A service's published ports as the scheduler reads them (host-mode ports filter). */
  readonly portsOf: (service: Service | string) => readonly PortConfig[] | undefined;
}

/** Nodes, the tasks holding resources on them, and the PENDING tasks that want a node. */
export function clusterState(tx: ReadTx): ClusterState {
  const nodes = tx.find('node').map(toSchedulerNode);
  const services = new Map<string, Service | undefined>();
  const portsOf = (ref: Service | string): readonly PortConfig[] | undefined => {
    const id = typeof ref === 'string' ? ref : ref.ID;
    if (!services.has(id)) services.set(id, typeof ref === 'string' ? tx.get('service', id) : ref);
    const s = services.get(id);
    return (s?.Endpoint?.Ports ?? s?.Spec.EndpointSpec?.Ports) as readonly PortConfig[] | undefined;
  };
  const placedTasks: PlacedTask[] = [];
  const pendingTasks: PendingTask[] = [];
  const pending = new Map<string, TaskWithUnits>();
  for (const task of tx.find('task') as TaskWithUnits[]) {
    if (task.Status.State === 'pending') {
      if (!wantsNode(task)) continue;
      pending.set(task.ID, task);
      const ports = portsOf(task.ServiceID);
      pendingTasks.push({
        ID: task.ID,
        ServiceID: task.ServiceID,
        Spec: task.Spec as PendingTask['Spec'],
        ...(task.NodeID !== '' ? { NodeID: task.NodeID } : {}),
        ...(ports !== undefined ? { Endpoint: { Ports: ports } } : {}),
      });
      continue;
    }
    if (!holdsResources(task) || isTerminal(task.Status.State)) continue;
    const ports = portsOf(task.ServiceID);
    placedTasks.push({
      ID: task.ID,
      ServiceID: task.ServiceID,
      NodeID: task.NodeID,
      DesiredState: task.DesiredState as PlacedTask['DesiredState'],
      Spec: task.Spec as PlacedTask['Spec'],
      ...(ports !== undefined ? { Endpoint: { Ports: ports } } : {}),
      ...(task.AssignedGenericResources !== undefined ? { AssignedGenericResources: task.AssignedGenericResources } : {}),
    });
  }
  return { nodes, placedTasks, pendingTasks, pending, portsOf };
}

/** The scheduler's placer: one per leader term, shared by the scheduler loop and the orchestrators. */
export class Placement implements TaskPlacer {
  private tail: Promise<unknown> = Promise.resolve();

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  placeNew(tx: ReadTx, wants: readonly PlacementWant[]): Map<string, Placed[]> | undefined {
    const out = new Map<string, Placed[]>();
    const asked = wants.filter((w) => w.count > 0);
    if (asked.length === 0) return out;
    const state = clusterState(tx);
    if (state.pendingTasks.length > 0) return undefined;
    // Stand-ins for the tasks to be created: every task of a service is interchangeable.
    const pendingTasks: PendingTask[] = [];
    const serviceOf = new Map<string, string>();
    for (const w of asked) {
      const ports = state.portsOf(w.service);
      const spec = w.service.Spec.TaskTemplate as PendingTask['Spec'];
      for (let i = 0; i < w.count; i++) {
        const id = `${w.service.ID}/new/${i}`;
        serviceOf.set(id, w.service.ID);
        pendingTasks.push({ ID: id, ServiceID: w.service.ID, Spec: spec, ...(ports !== undefined ? { Endpoint: { Ports: ports } } : {}) });
      }
    }
    const result = schedule({ nodes: state.nodes, placedTasks: state.placedTasks, pendingTasks });
    // Per service, per node in the order nodes were first chosen: a node's tasks side by side.
    const byService = new Map<string, Map<string, Placed[]>>();
    for (const [id, nodeId] of result.assignments) {
      const svc = serviceOf.get(id)!;
      let nodes = byService.get(svc);
      if (nodes === undefined) byService.set(svc, (nodes = new Map()));
      let list = nodes.get(nodeId);
      if (list === undefined) nodes.set(nodeId, (list = []));
      const units = result.genericResources.get(id);
      list.push(units !== undefined ? { nodeId, units } : { nodeId });
    }
    for (const w of asked) {
      const placed: Placed[] = [];
      for (const list of byService.get(w.service.ID)?.values() ?? []) for (const p of list) placed.push(p);
      out.set(w.service.ID, placed);
    }
    return out;
  }
}
