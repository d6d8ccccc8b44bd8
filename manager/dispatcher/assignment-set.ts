// One node's assignment set as the dispatcher last sent it: the node's tasks (ASSIGNED or later,
// until the task is deleted — the agent removes a task's container when it leaves the set), and
// the secrets and configs those tasks reference while they may still run (state ≤ RUNNING).
// `complete()` lists everything; `applyChanges()` folds store events in and returns only what the
// worker must hear about (a task's own status reports are not echoed back to it).
// Networks: the peers of every network the node's tasks (or its ingress sandbox) attach to
// (network-peers.ts); `networkChanges()` returns those whose view changed and those the node left.
import type { ReadTx } from '../store/memory-store.js';
import { byNodeId } from '../store/query.js';
import type { Config, Secret, Task } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import { NetworkPeersCache, networksOfNode, type NetworkPeers } from './network-peers.js';
import { taskStateRank } from './task-transitions.js';

export type AssignedItem =
  | { readonly kind: 'task'; readonly object: Task }
  | { readonly kind: 'secret'; readonly object: Secret }
  | { readonly kind: 'config'; readonly object: Config }
  | { readonly kind: 'network'; readonly object: NetworkPeers };

export interface AssignmentDelta {
  readonly updates: readonly AssignedItem[];
  readonly removes: readonly AssignedItem[];
}

const ASSIGNED_RANK = taskStateRank('assigned');
const RUNNING_RANK = taskStateRank('running');

export function isAssignedTask(t: Task, nodeId: string): boolean {
  return t.NodeID === nodeId && taskStateRank(t.Status.State) >= ASSIGNED_RANK;
}

/** What of a task the worker acts on; a change elsewhere (its status, version) is not news to it. */
const WORKER_FIELDS = ['Spec', 'DesiredState', 'ServiceID', 'Slot', 'Labels', 'NetworksAttachments', 'JobIteration'] as const;

/**
 * Does the worker see the same task? Field by field: the same value or the same (frozen, shared)
 * object is the same — a status report leaves the rest of the stored task shared — and only a
 * field that is a different object is compared by its JSON. Runs for every task event routed to
 * a node (a worker's own status reports included): it allocates nothing when the fields are shared.
 */
function sameForWorker(a: Task, b: Task): boolean {
  for (const k of WORKER_FIELDS) {
    const x: unknown = a[k];
    const y: unknown = b[k];
    if (x === y) continue;
    if (typeof x !== 'object' || typeof y !== 'object' || JSON.stringify(x) !== JSON.stringify(y)) return false;
  }
  return true;
}

function needsDependencies(t: Task): boolean {
  return taskStateRank(t.Status.State) <= RUNNING_RANK;
}

/** Does the task name any secret or config? One that names none cannot change the node's dependencies. */
function namesDependencies(t: Task | undefined): boolean {
  const c = t?.Spec.ContainerSpec;
  return (c?.Secrets?.length ?? 0) > 0 || (c?.Configs?.length ?? 0) > 0;
}

export class AssignmentSet {
  private readonly tasks = new Map<string, Task>();
  private readonly secrets = new Map<string, Secret>();
  private readonly configs = new Map<string, Config>();
  /** Network views as last sent, with their JSON for comparison. */
  private readonly networks = new Map<string, { readonly view: NetworkPeers; readonly json: string }>();

  constructor(readonly nodeId: string) {}

  get taskCount(): number {
    return this.tasks.size;
  }

  /** Replaces the set with the store's view; returns every item. */
  complete(tx: ReadTx): AssignedItem[] {
    this.tasks.clear();
    this.secrets.clear();
    this.configs.clear();
    for (const t of tx.find('task', byNodeId(this.nodeId))) if (isAssignedTask(t, this.nodeId)) this.tasks.set(t.ID, t);
    this.refreshDependencies(tx);
    this.networks.clear();
    const networks = this.networkChanges(null, new NetworkPeersCache(tx), tx).updates;
    return [
      ...[...this.tasks.values()].map((object): AssignedItem => ({ kind: 'task', object })),
      ...[...this.secrets.values()].map((object): AssignedItem => ({ kind: 'secret', object })),
      ...[...this.configs.values()].map((object): AssignedItem => ({ kind: 'config', object })),
      ...networks,
    ];
  }

  /** Folds in store events (already filtered to this node's tasks, and secrets/configs); `tx` is the store now. */
  applyChanges(events: readonly ChangeEvent[], tx: ReadTx): AssignmentDelta {
    const updates: AssignedItem[] = [];
    const removes: AssignedItem[] = [];
    let depsTouched = false;
    for (const ev of events) {
      if (ev.kind === 'task') {
        const before = this.tasks.get(ev.object.ID);
        const now = ev.action === 'delete' ? undefined : ev.object;
        if (now !== undefined && isAssignedTask(now, this.nodeId)) {
          this.tasks.set(now.ID, now);
          // ASSIGNED is the scheduler's hand-off: always news. Otherwise only what the worker acts on.
          if (before === undefined || now.Status.State === 'assigned' || !sameForWorker(before, now)) updates.push({ kind: 'task', object: now });
          if ((namesDependencies(before) || namesDependencies(now)) && (before === undefined || before.Spec !== now.Spec || needsDependencies(before) !== needsDependencies(now))) depsTouched = true;
        } else if (before !== undefined) {
          this.tasks.delete(before.ID);
          removes.push({ kind: 'task', object: before });
          if (namesDependencies(before)) depsTouched = true;
        }
      } else if (ev.kind === 'secret') {
        // Tasks name secrets and configs by ID and the control API refuses unknown ones: only a
        // change to one this node's tasks already use matters (a new one is not used yet).
        if (this.secrets.has(ev.object.ID)) depsTouched = true;
      } else if (ev.kind === 'config') {
        if (this.configs.has(ev.object.ID)) depsTouched = true;
      }
    }
    if (depsTouched) {
      const before = { secrets: new Map(this.secrets), configs: new Map(this.configs) };
      this.refreshDependencies(tx);
      for (const [id, s] of this.secrets) if (before.secrets.get(id)?.Version.Index !== s.Version.Index) updates.push({ kind: 'secret', object: s });
      for (const [id, s] of before.secrets) if (!this.secrets.has(id)) removes.push({ kind: 'secret', object: s });
      for (const [id, c] of this.configs) if (before.configs.get(id)?.Version.Index !== c.Version.Index) updates.push({ kind: 'config', object: c });
      for (const [id, c] of before.configs) if (!this.configs.has(id)) removes.push({ kind: 'config', object: c });
    }
    return { updates, removes };
  }

  /**
   * Of a routing pass's secret and config events, those about one this set holds: the only ones
   * that can change what the node is sent (see applyChanges). Most config and secret writes
   * concern no task on the node (a new one is used by nobody yet), and they then cost the node
   * nothing — swarmkit likewise sends a node only the secrets and configs its tasks use. An object
   * the node's tasks start using later is read from the store when they do (refreshDependencies),
   * so leaving its earlier events out loses nothing. Returns `events` itself when all are used.
   */
  dependencyEvents(events: readonly ChangeEvent[]): readonly ChangeEvent[] {
    let used: ChangeEvent[] | null = null;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      const holds = ev.kind === 'secret' ? this.secrets.has(ev.object.ID) : ev.kind === 'config' ? this.configs.has(ev.object.ID) : true;
      if (holds) used?.push(ev);
      else used ??= events.slice(0, i);
    }
    return used ?? events;
  }

  /** Is any of these secret and config events about one this set holds? (dependencyEvents without a copy.) */
  holdsAnyDependency(events: readonly ChangeEvent[]): boolean {
    for (const ev of events) {
      if (ev.kind === 'secret' ? this.secrets.has(ev.object.ID) : ev.kind === 'config' ? this.configs.has(ev.object.ID) : true) return true;
    }
    return false;
  }

  /**
   * Network views to send: networks the node newly takes part in, those in `touched` (null: all)
   * whose view changed, and removes for those it left. Call after applyChanges (it reads the set).
   */
  networkChanges(touched: ReadonlySet<string> | null, cache: NetworkPeersCache, tx: ReadTx): AssignmentDelta {
    const updates: AssignedItem[] = [];
    const removes: AssignedItem[] = [];
    const now = networksOfNode(this.tasks.values(), tx.get('node', this.nodeId));
    for (const [id, network] of now) {
      const before = this.networks.get(id);
      if (before !== undefined && touched !== null && !touched.has(id)) continue;
      const { view, json } = cache.view(id, network);
      if (before?.json === json) continue;
      this.networks.set(id, { view, json });
      updates.push({ kind: 'network', object: view });
    }
    for (const [id, before] of [...this.networks]) {
      if (now.has(id)) continue;
      this.networks.delete(id);
      removes.push({ kind: 'network', object: before.view });
    }
    return { updates, removes };
  }

  private refreshDependencies(tx: ReadTx): void {
    this.secrets.clear();
    this.configs.clear();
    for (const t of this.tasks.values()) {
      if (!needsDependencies(t)) continue;
      for (const ref of t.Spec.ContainerSpec?.Secrets ?? []) {
        const s = tx.get('secret', ref.SecretID);
        if (s !== undefined) this.secrets.set(s.ID, s);
      }
      for (const ref of t.Spec.ContainerSpec?.Configs ?? []) {
        const c = tx.get('config', ref.ConfigID);
        if (c !== undefined) this.configs.set(c.ID, c);
      }
    }
  }
}
