// One consistent view of the cluster for one scheduling pass: what each node has left and how
// many tasks it runs, updated as the pass makes decisions so later decisions see earlier ones.
// Nodes are numbered by their ID's sort order: that number is the final tie-break, which makes
// the outcome independent of the order the caller lists nodes in.
//
// Dense typed arrays hold the per-node figures; per-service task counts are sparse maps (a
// service usually runs on few of many nodes) plus one dense scratch array for the service whose
// tasks are being decided.

import { SchedulerInputError } from './errors.js';
import type { GenericResource, PlacedTask, PortConfig, Resources, SchedulerNode, TaskSpec, TaskState } from './types.js';

/** What one task takes from a node, compiled once per task group. */
export interface Demand {
  readonly nanoCpus: number;
  readonly memoryBytes: number;
  /** Generic resource kind → units, e.g. `gpu` → 2. */
  readonly generic: ReadonlyMap<string, number>;
  /** Host-mode published ports as `8080/tcp`. */
  readonly hostPorts: readonly string[];
}

const EMPTY_GENERIC: ReadonlyMap<string, number> = new Map();

/** Desired states at which a task no longer counts for spread (it is going away). */
const INACTIVE_DESIRED: ReadonlySet<TaskState> = new Set(['shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

export function genericUnits(resources: readonly GenericResource[] | undefined): Map<string, number> {
  const units = new Map<string, number>();
  for (const r of resources ?? []) {
    if (r.DiscreteResourceSpec !== undefined) {
      const { Kind, Value } = r.DiscreteResourceSpec;
      units.set(Kind, (units.get(Kind) ?? 0) + Value);
    } else if (r.NamedResourceSpec !== undefined) {
      const kind = r.NamedResourceSpec.Kind;
      units.set(kind, (units.get(kind) ?? 0) + 1);
    }
  }
  return units;
}

export function hostPortKeys(ports: readonly PortConfig[] | undefined): string[] {
  const keys: string[] = [];
  for (const p of ports ?? []) {
    if (p.PublishMode === 'host' && p.PublishedPort !== undefined && p.PublishedPort !== 0) {
      keys.push(`${p.PublishedPort}/${p.Protocol ?? 'tcp'}`);
    }
  }
  return keys;
}

export function demandOf(spec: TaskSpec, ports: readonly PortConfig[] | undefined): Demand {
  const r: Resources | undefined = spec.Resources?.Reservations;
  const generic = r?.GenericResources === undefined || r.GenericResources.length === 0 ? EMPTY_GENERIC : genericUnits(r.GenericResources);
  return {
    nanoCpus: r?.NanoCPUs ?? 0,
    memoryBytes: r?.MemoryBytes ?? 0,
    generic,
    hostPorts: hostPortKeys(ports),
  };
}

export class ClusterView {
  /** Nodes in ID order; a node's number is its position here. */
  readonly nodes: readonly SchedulerNode[];
  readonly size: number;
  /** Available NanoCPUs / bytes (capacity minus reservations of tasks on the node). */
  readonly nanoCpus: Float64Array;
  readonly memoryBytes: Float64Array;
  /** Tasks on each node that count for spread, all services. */
  readonly activeTasks: Int32Array;
  /** Why the node takes no new task at all (down, drained, paused), or undefined when it does. */
  readonly readyRefusal: readonly (string | undefined)[];

  private readonly indexById = new Map<string, number>();
  private readonly generic = new Map<string, Float64Array>();
  /** Kind → node → names of its free named units, in name order (only nodes that name units). */
  private readonly namedFree = new Map<string, Map<number, string[]>>();
  private readonly portsInUse = new Map<string, Uint8Array>();
  private readonly serviceTasks = new Map<string, Map<number, number>>();

  /** Dense per-node counts of `scratchService`, the service being decided. */
  readonly serviceScratch: Int32Array;
  private scratchService: string | undefined;
  private scratchTouched: number[] = [];

  constructor(nodes: readonly SchedulerNode[], placed: readonly PlacedTask[]) {
    const sorted = [...nodes].sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0));
    this.nodes = sorted;
    this.size = sorted.length;
    this.nanoCpus = new Float64Array(this.size);
    this.memoryBytes = new Float64Array(this.size);
    this.activeTasks = new Int32Array(this.size);
    this.serviceScratch = new Int32Array(this.size);
    const refusals: (string | undefined)[] = new Array<string | undefined>(this.size);
    for (let i = 0; i < this.size; i++) {
      const node = sorted[i]!;
      if (this.indexById.has(node.ID)) throw new SchedulerInputError(`node ${node.ID} is listed twice`);
      this.indexById.set(node.ID, i);
      const res = node.Description?.Resources;
      this.nanoCpus[i] = res?.NanoCPUs ?? 0;
      this.memoryBytes[i] = res?.MemoryBytes ?? 0;
      if (res?.GenericResources !== undefined && res.GenericResources.length > 0) {
        for (const [kind, units] of genericUnits(res.GenericResources)) this.genericAvailable(kind)[i] = units;
        this.addNamedUnits(i, res.GenericResources);
      }
      refusals[i] = readyRefusalOf(node);
    }
    this.readyRefusal = refusals;
    for (const t of placed) {
      const at = this.indexById.get(t.NodeID);
      if (at === undefined) continue; // the node left the cluster; its tasks will be replaced, not counted
      const active = t.DesiredState === undefined || !INACTIVE_DESIRED.has(t.DesiredState);
      this.takePlaced(at, t, active);
    }
  }

  indexOf(nodeId: string): number | undefined {
    return this.indexById.get(nodeId);
  }

  private addNamedUnits(at: number, resources: readonly GenericResource[]): void {
    for (const r of resources) {
      if (r.NamedResourceSpec === undefined) continue;
      let byNode = this.namedFree.get(r.NamedResourceSpec.Kind);
      if (byNode === undefined) {
        byNode = new Map();
        this.namedFree.set(r.NamedResourceSpec.Kind, byNode);
      }
      const names = byNode.get(at) ?? [];
      names.push(r.NamedResourceSpec.Value);
      byNode.set(at, names);
    }
    for (const byNode of this.namedFree.values()) byNode.get(at)?.sort();
  }

  /** Available units of a generic resource kind per node (zero where a node has none). */
  genericAvailable(kind: string): Float64Array {
    let arr = this.generic.get(kind);
    if (arr === undefined) {
      arr = new Float64Array(this.size);
      this.generic.set(kind, arr);
    }
    return arr;
  }

  /** Per node, 1 where the host port (`8080/tcp`) is taken. */
  portUse(port: string): Uint8Array {
    let arr = this.portsInUse.get(port);
    if (arr === undefined) {
      arr = new Uint8Array(this.size);
      this.portsInUse.set(port, arr);
    }
    return arr;
  }

  /** Tasks of a service on a node (the scratch array is faster for the service being decided). */
  serviceTasksOn(serviceId: string, node: number): number {
    if (serviceId === this.scratchService) return this.serviceScratch[node]!;
    return this.serviceTasks.get(serviceId)?.get(node) ?? 0;
  }

  /** Loads the service's per-node counts into `serviceScratch`. */
  focusService(serviceId: string): void {
    if (this.scratchService === serviceId) return;
    for (const i of this.scratchTouched) this.serviceScratch[i] = 0;
    this.scratchTouched = [];
    this.scratchService = serviceId;
    const counts = this.serviceTasks.get(serviceId);
    if (counts === undefined) return;
    for (const [i, n] of counts) {
      this.serviceScratch[i] = n;
      this.scratchTouched.push(i);
    }
  }

  /** `take` for a task already on a node, reading its spec in place (there can be many of them). */
  private takePlaced(at: number, t: PlacedTask, active: boolean): void {
    const r = t.Spec.Resources?.Reservations;
    if (r !== undefined) {
      this.nanoCpus[at] -= r.NanoCPUs ?? 0;
      this.memoryBytes[at] -= r.MemoryBytes ?? 0;
      if (r.GenericResources !== undefined && r.GenericResources.length > 0) {
        for (const [kind, units] of genericUnits(r.GenericResources)) this.genericAvailable(kind)[at] -= units;
      }
    }
    for (const held of t.AssignedGenericResources ?? []) {
      if (held.NamedResourceSpec === undefined) continue;
      const names = this.namedFree.get(held.NamedResourceSpec.Kind)?.get(at);
      const i = names?.indexOf(held.NamedResourceSpec.Value) ?? -1;
      if (i >= 0) names!.splice(i, 1);
    }
    const ports = t.Endpoint?.Ports;
    if (ports !== undefined && ports.length > 0) for (const port of hostPortKeys(ports)) this.portUse(port)[at] = 1;
    if (active) this.countTask(at, t.ServiceID);
  }

  /** Nodes where the focused service has tasks (its non-zero entries in `serviceScratch`). */
  serviceNodes(): readonly number[] {
    return this.scratchTouched;
  }

  /**
   * Records that a new task now holds `demand` on node `at`; returns the generic resource units it
   * gets (named ones first, in name order), or undefined when it reserves none.
   */
  take(at: number, serviceId: string, demand: Demand): GenericResource[] | undefined {
    this.nanoCpus[at] -= demand.nanoCpus;
    this.memoryBytes[at] -= demand.memoryBytes;
    if (demand.hostPorts.length > 0) for (const port of demand.hostPorts) this.portUse(port)[at] = 1;
    this.countTask(at, serviceId);
    if (demand.generic.size === 0) return undefined;
    const assigned: GenericResource[] = [];
    for (const [kind, units] of demand.generic) {
      this.genericAvailable(kind)[at] -= units;
      const free = this.namedFree.get(kind)?.get(at);
      const named = free === undefined ? [] : free.splice(0, Math.min(units, free.length));
      for (const Value of named) assigned.push({ NamedResourceSpec: { Kind: kind, Value } });
      if (units > named.length) assigned.push({ DiscreteResourceSpec: { Kind: kind, Value: units - named.length } });
    }
    return assigned;
  }

  private lastCountedService: string | undefined;
  private lastCounts: Map<number, number> | undefined;

  private countTask(at: number, serviceId: string): void {
    this.activeTasks[at]++;
    let counts: Map<number, number> | undefined;
    // Tasks come in runs of one service: remember the last map looked up.
    if (this.lastCountedService === serviceId) counts = this.lastCounts;
    else counts = this.serviceTasks.get(serviceId);
    if (counts === undefined) {
      counts = new Map();
      this.serviceTasks.set(serviceId, counts);
    }
    this.lastCountedService = serviceId;
    this.lastCounts = counts;
    const n = (counts.get(at) ?? 0) + 1;
    counts.set(at, n);
    if (serviceId === this.scratchService) {
      if (this.serviceScratch[at] === 0) this.scratchTouched.push(at);
      this.serviceScratch[at] = n;
    }
  }
}

function readyRefusalOf(node: SchedulerNode): string | undefined {
  if (node.Status.State === 'unknown') return 'node state unknown';
  if (node.Status.State !== 'ready') return `node ${node.Status.State}`;
  if (node.Spec.Availability === 'drain') return 'node drained';
  if (node.Spec.Availability === 'pause') return 'node paused';
  return undefined;
}
