// One scheduling pass: (nodes, tasks already placed, tasks to place) → assignments, and a reason
// for every task left pending. Pure: no store, no clock, no randomness; the same input gives the
// same output whatever the order of the nodes.
//
// The pass, in order:
//   1. Build one ClusterView from the nodes and placed tasks; every decision below updates it, so
//      each decision sees the resources, ports and counts taken by the ones before.
//   2. Group the pending tasks: tasks of one service with one spec version are interchangeable.
//   3. Tasks that already name a node (global services) are checked against that node only.
//   4. Each group, in key order: run the static filters (ready, constraints, platform) over all
//      nodes once (cached per distinct constraints+platforms), build the spread tree of the
//      preferences over the eligible nodes, split the group's tasks over its branches, and in each
//      leaf give tasks one by one to the best node (LeafCandidates), dropping nodes the dynamic
//      filters (max replicas, host ports, resources) refuse.
//   5. Tasks left over get `no suitable node (…)` with the refusals counted over every node.

import { ClusterView, demandOf, hostPortKeys, type Demand } from './cluster-view.js';
import { parseConstraint, type Constraint } from './constraints.js';
import { SchedulerError, SchedulerInputError } from './errors.js';
import { constraintFilter } from './filters/constraint.js';
import type { NodeFilter } from './filters/filter.js';
import { hostPortsFilter } from './filters/host-ports.js';
import { maxReplicasFilter } from './filters/max-replicas.js';
import { platformFilter } from './filters/platform.js';
import { readyFilter } from './filters/ready.js';
import { resourcesFilter } from './filters/resources.js';
import { firstRefusal, noSuitableNode, Refusals } from './pipeline.js';
import { parsePreferences, spreadValue, type SpreadOver } from './preferences.js';
import { SelectionMarks } from './node-heap.js';
import { SpreadLayout, SpreadTree, waterFill } from './spread-tree.js';
import type { GenericResource, PendingTask, SchedulerInput, SchedulerResult, TaskSpec } from './types.js';

interface TaskGroup {
  readonly key: string;
  readonly serviceId: string;
  /** The group's representative: every task of the group is placed as this one would be. */
  readonly first: PendingTask;
  readonly free: PendingTask[];
  readonly preassigned: PendingTask[];
}

type CompiledGroup =
  | { readonly ok: false; readonly reason: string }
  | {
      readonly ok: true;
      readonly demand: Demand;
      readonly staticKey: string;
      readonly staticFilters: readonly NodeFilter[];
      readonly dynamicFilters: readonly NodeFilter[];
      readonly spread: readonly SpreadOver[];
    };

interface StaticOutcome {
  /** Nodes that passed ready, constraints and platform, in node order. */
  readonly eligible: Int32Array;
  readonly refusals: Refusals;
}

export function schedule(input: SchedulerInput): SchedulerResult {
  const view = new ClusterView(input.nodes, input.placedTasks);
  const pass = new Pass(view);
  const groups = groupTasks(input.pendingTasks);
  for (const group of groups) {
    if (group.preassigned.length > 0) pass.confirmPreassigned(group);
  }
  for (const group of groups) {
    if (group.free.length > 0) pass.placeGroup(group);
  }
  checkUniqueIds(input.pendingTasks, pass.assignments.size + pass.unplaced.size);
  return { assignments: pass.assignments, unplaced: pass.unplaced, genericResources: pass.genericResources };
}

class Pass {
  readonly assignments = new Map<string, string>();
  readonly unplaced = new Map<string, string>();
  readonly genericResources = new Map<string, readonly GenericResource[]>();
  private readonly ready: NodeFilter;
  private readonly constraintCache = new Map<string, Constraint>();
  private readonly staticCache = new Map<string, StaticOutcome>();
  private readonly spreadCache = new Map<string, readonly string[]>();
  private readonly compiled = new Map<string, CompiledGroup>();
  private readonly layoutCache = new Map<string, SpreadLayout>();
  private readonly candidateCache = new Map<string, readonly (Int32Array | undefined)[]>();

  private readonly selection: SelectionMarks;

  constructor(private readonly view: ClusterView) {
    this.ready = readyFilter(view);
    this.selection = new SelectionMarks(view.size);
  }

  /** A task that names its node is placed there if every filter passes on that node. */
  confirmPreassigned(group: TaskGroup): void {
    const compiled = this.compile(group);
    for (const task of group.preassigned) {
      if (!compiled.ok) {
        this.leavePending(task, compiled.reason);
        continue;
      }
      const node = this.view.indexOf(task.NodeID!);
      if (node === undefined) {
        this.leavePending(task, `no suitable node (node ${task.NodeID} is not in the cluster)`);
        continue;
      }
      this.view.focusService(group.serviceId);
      const refusal =
        firstRefusal(compiled.staticFilters, node) ?? firstRefusal(compiled.dynamicFilters, node);
      if (refusal !== undefined) {
        this.leavePending(task, `no suitable node (${refusal.phrase} on 1 node)`);
        continue;
      }
      this.assign(task, node, group.serviceId, compiled.demand);
    }
  }

  placeGroup(group: TaskGroup): void {
    const compiled = this.compile(group);
    if (!compiled.ok) {
      for (const task of group.free) this.leavePending(task, compiled.reason);
      return;
    }
    const view = this.view;
    view.focusService(group.serviceId);
    const outcome = this.staticOutcome(compiled.staticKey, compiled.staticFilters);
    const layoutKey = compiled.spread.map((s) => `${s.source}\u0000${s.label}`).join('\u0001');
    const layout = this.layout(layoutKey, compiled.spread);
    const tree = new SpreadTree(layout, this.candidates(compiled.staticKey, layoutKey, outcome, layout), view.serviceNodes(), view.serviceScratch, view.activeTasks, this.selection);

    const tasks = group.free;
    const dynamic = compiled.dynamicFilters;
    const refusals = new Refusals();
    let nextTask = 0;

    const placeOnLeaf = (leaf: number, want: number): number => {
      const candidates = tree.leaf(leaf, want);
      let placed = 0;
      // Each turn places a task or drops a node: at most want + candidates turns.
      while (placed < want) {
        const node = candidates.best();
        if (node < 0) {
          tree.full[leaf] = 1;
          break;
        }
        const refusal = firstRefusal(dynamic, node);
        if (refusal !== undefined) {
          refusals.add(refusal.phrase, refusal.rank);
          candidates.dropBest();
          continue;
        }
        this.assign(tasks[nextTask++]!, node, group.serviceId, compiled.demand);
        placed++;
        candidates.placedOnBest();
      }
      return placed;
    };

    const placeOn = (branch: number, want: number): number => {
      if (tree.full[branch] === 1 || want === 0) return 0;
      let placed = 0;
      const children = layout.children[branch];
      if (children === undefined) {
        placed = placeOnLeaf(branch, want);
      } else {
        // A round either places everything asked or fills at least one more child.
        for (let round = 0; placed < want && round <= children.length; round++) {
          const open = [...children].filter((c) => tree.full[c] === 0);
          if (open.length === 0) break;
          const shares = waterFill(
            open.map((c) => tree.tasks[c]!),
            want - placed,
          );
          for (let i = 0; i < open.length; i++) {
            if (shares[i]! > 0) placed += placeOn(open[i]!, shares[i]!);
          }
        }
        tree.full[branch] = children.every((c) => tree.full[c] === 1) ? 1 : 0;
      }
      tree.tasks[branch] += placed;
      return placed;
    };

    placeOn(0, tasks.length);
    if (nextTask < tasks.length) {
      refusals.addAll(outcome.refusals);
      const reason = noSuitableNode(refusals, view.size);
      for (let i = nextTask; i < tasks.length; i++) this.leavePending(tasks[i]!, reason);
    }
  }

  private leavePending(task: PendingTask, reason: string): void {
    if (this.unplaced.has(task.ID) || this.assignments.has(task.ID)) {
      throw new SchedulerInputError(`task ${task.ID} is listed twice among the tasks to place`);
    }
    this.unplaced.set(task.ID, reason);
  }

  private assign(task: PendingTask, node: number, serviceId: string, demand: Demand): void {
    const generic = this.view.take(node, serviceId, demand);
    this.assignments.set(task.ID, this.view.nodes[node]!.ID);
    if (generic !== undefined) this.genericResources.set(task.ID, generic);
  }

  private compile(group: TaskGroup): CompiledGroup {
    let compiled = this.compiled.get(group.key);
    if (compiled !== undefined) return compiled;
    compiled = this.compileUncached(group.first);
    this.compiled.set(group.key, compiled);
    return compiled;
  }

  private compileUncached(task: PendingTask): CompiledGroup {
    const placement = task.Spec.Placement;
    let constraints: Constraint[];
    let spread: SpreadOver[];
    try {
      constraints = (placement?.Constraints ?? []).map((c) => this.constraint(c));
      spread = parsePreferences(placement?.Preferences ?? []);
    } catch (err) {
      if (err instanceof SchedulerError) return { ok: false, reason: err.message };
      throw err;
    }
    const view = this.view;
    const platforms = placement?.Platforms ?? [];
    const demand = demandOf(task.Spec, task.Endpoint?.Ports);
    const staticFilters = [this.ready, constraintFilter(view, constraints), platformFilter(view, platforms)];
    const dynamicFilters = [
      maxReplicasFilter(view, placement?.MaxReplicas),
      hostPortsFilter(view, demand.hostPorts),
      resourcesFilter(view, demand),
    ];
    return {
      ok: true,
      demand,
      staticKey: JSON.stringify([constraints.map((c) => c.text), platforms.map((p) => [p.OS ?? '', p.Architecture ?? ''])]),
      staticFilters: staticFilters.filter((f) => f !== undefined),
      dynamicFilters: dynamicFilters.filter((f) => f !== undefined),
      spread,
    };
  }

  private constraint(text: string): Constraint {
    let c = this.constraintCache.get(text);
    if (c === undefined) {
      c = parseConstraint(text);
      this.constraintCache.set(text, c);
    }
    return c;
  }

  /** Static filters depend only on the node, never on this pass's decisions: run once per key. */
  private staticOutcome(key: string, filters: readonly NodeFilter[]): StaticOutcome {
    const cached = this.staticCache.get(key);
    if (cached !== undefined) return cached;
    const refusals = new Refusals();
    const eligible: number[] = [];
    for (let node = 0; node < this.view.size; node++) {
      const refusal = firstRefusal(filters, node);
      if (refusal === undefined) eligible.push(node);
      else refusals.add(refusal.phrase, refusal.rank);
    }
    const outcome = { eligible: Int32Array.from(eligible), refusals };
    this.staticCache.set(key, outcome);
    return outcome;
  }

  private layout(key: string, spread: readonly SpreadOver[]): SpreadLayout {
    let layout = this.layoutCache.get(key);
    if (layout === undefined) {
      layout = new SpreadLayout(
        this.view.size,
        spread.map((s) => this.spreadValues(s)),
      );
      this.layoutCache.set(key, layout);
    }
    return layout;
  }

  /** The eligible nodes of each leaf, for one set of static filters and one layout. */
  private candidates(staticKey: string, layoutKey: string, outcome: StaticOutcome, layout: SpreadLayout): readonly (Int32Array | undefined)[] {
    const key = `${staticKey}\u0002${layoutKey}`;
    let lists = this.candidateCache.get(key);
    if (lists === undefined) {
      lists = layout.bucket(outcome.eligible);
      this.candidateCache.set(key, lists);
    }
    return lists;
  }

  private spreadValues(over: SpreadOver): readonly string[] {
    const key = `${over.source}\u0000${over.label}`;
    let values = this.spreadCache.get(key);
    if (values === undefined) {
      values = this.view.nodes.map((n) => spreadValue(n, over));
      this.spreadCache.set(key, values);
    }
    return values;
  }
}

const specKeys = new WeakMap<TaskSpec, string>();

/** What placement reads from a spec, as a string: tasks with equal keys are interchangeable. */
function placementKey(spec: TaskSpec): string {
  let key = specKeys.get(spec);
  if (key === undefined) {
    key = JSON.stringify([spec.Resources?.Reservations ?? null, spec.Placement ?? null]);
    specKeys.set(spec, key);
  }
  return key;
}

/** Groups pending tasks by service and spec version (or, without a version, by placement fields). */
function groupTasks(pending: readonly PendingTask[]): TaskGroup[] {
  const byService = new Map<string, Map<string | number, TaskGroup>>();
  const all: TaskGroup[] = [];
  for (const task of pending) {
    // A version number alone is the common case; only host ports or a missing version need a string.
    const ports = task.Endpoint?.Ports !== undefined && task.Endpoint.Ports.length > 0 ? hostPortKeys(task.Endpoint.Ports).join(',') : '';
    const version: string | number =
      task.SpecVersion === undefined ? `s${placementKey(task.Spec)}\u0000${ports}` : ports === '' ? task.SpecVersion.Index : `v${task.SpecVersion.Index}\u0000${ports}`;
    let groups = byService.get(task.ServiceID);
    if (groups === undefined) {
      groups = new Map();
      byService.set(task.ServiceID, groups);
    }
    let group = groups.get(version);
    if (group === undefined) {
      group = { key: `${task.ServiceID}\u0000${typeof version === 'number' ? `v${version}` : version}`, serviceId: task.ServiceID, first: task, free: [], preassigned: [] };
      groups.set(version, group);
      all.push(group);
    }
    if (task.NodeID !== undefined && task.NodeID !== '') group.preassigned.push(task);
    else group.free.push(task);
  }
  return all.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Every pending task gets exactly one outcome; fewer outcomes than tasks means an ID was repeated. */
function checkUniqueIds(pending: readonly PendingTask[], outcomes: number): void {
  if (outcomes === pending.length) return;
  const seen = new Set<string>();
  for (const task of pending) {
    if (seen.has(task.ID)) throw new SchedulerInputError(`task ${task.ID} is listed twice among the tasks to place`);
    seen.add(task.ID);
  }
}
