// The replicated orchestrator: keeps `Replicas` slots of every replicated service filled.
//
// Per service, per pass: group its tasks by slot and count the slots that are runnable (a task
// desired ≤ RUNNING) or settled (the restart policy let its last task end; see slotCondition).
// - Fewer than Replicas: new tasks (desired RUNNING, observed NEW), first in empty slots that
//   held tasks before, then in the lowest unused slot numbers. With a placer (the scheduler's,
//   see placer.ts) the tasks of a scale-up that need no allocation are created ASSIGNED to the
//   nodes it chose, each node's tasks in one transaction; without one, or where it declines, PENDING.
// - More: the extra slots' tasks get desired REMOVE (the reaper deletes them once stopped).
//   Which slots go: not-yet-running ones first, then those on the nodes that run the most
//   tasks of the service, then the highest slot numbers.
// - Service deleted: all its tasks get desired REMOVE.
// Replacing failed tasks is the restart supervisor's job, replacing outdated ones the updater's.
//
// With `maxTxInFlight` > 1, a big scale-up (more than one transaction's worth of new tasks) is
// proposed as up to that many transactions at once, so their Raft round trips overlap: the later
// ones are built against the same committed state plus the slots the earlier ones of this pass
// are creating, and do scale-ups only (anything else waits for the next pass). If one fails, the
// pass fails and the next one decides from committed state, as after any failed pass. Default 4:
// with tasks that need no allocation created PENDING, and the allocator proposing its chunks
// together, bench:cluster (10,000 replicas) spent less leader CPU per task and converged sooner
// (session 3 had it off: the allocator, one transaction at a time, fell behind the flood).
import { needsAllocation } from '../allocator/endpoints.js';
import type { ReadTx, Tx } from '../store/memory-store.js';
import { byServiceId } from '../store/query.js';
import type { NewObject, Service, Task } from '../store/types.js';
import type { ChangeEvent } from '../store/watch.js';
import type { CreationBurst } from './burst.js';
import { MAX_WRITES_PER_TX, ReconcileLoop, type LoopOptions } from './loop.js';
import { ASSIGNED_MESSAGE, type Placed, type PlacementWant, type TaskPlacer } from './placer.js';
import { groupBySlot, newTask, replicasOf, serviceMode, slotCondition, specKey } from './service-model.js';
import { isRunnable, isTerminal, reachedNode, stateRank } from './task-state.js';

export interface ReplicatedOrchestratorOptions extends LoopOptions {
  /** Transactions one pass may have in flight for a large scale-up (default 4). */
  readonly maxTxInFlight?: number;
  /**
   * Held while a scale-up is still being committed (from its first creation pass until the
   * commits of its last one landed), so the scheduler loop can place the whole burst in one pass.
   */
  readonly burst?: CreationBurst;
  /**
   * The scheduler's placer: a scale-up's tasks are created ASSIGNED to the nodes it gives (one
   * write per task instead of two), under its lock. Without one they are created PENDING.
   */
  readonly placer?: TaskPlacer;
}

/** A scale-up's nodes, handed out as its tasks are created. */
interface Placements {
  readonly list: readonly Placed[];
  next: number;
}

export class ReplicatedOrchestrator extends ReconcileLoop {
  /** Services this loop owns, so a deleted one is recognised from its ID alone. */
  private readonly known = new Set<string>();
  private readonly maxTxInFlight: number;
  private readonly burst: CreationBurst | null;
  private readonly placer: TaskPlacer | null;
  private placedCount = 0;

  constructor(opts: ReplicatedOrchestratorOptions) {
    super(opts, 'replicated-orchestrator', ['service', 'task']);
    this.maxTxInFlight = Math.max(1, opts.maxTxInFlight ?? 4);
    this.burst = opts.burst ?? null;
    this.placer = opts.placer ?? null;
  }

  /** Tasks created already ASSIGNED (placed by the placer before they existed), so far (tests, logs). */
  get placedAtCreation(): number {
    return this.placedCount;
  }

  override async stop(): Promise<void> {
    await super.stop();
    this.burst?.release();
  }

  protected resync(tx: ReadTx): void {
    this.known.clear();
    for (const s of tx.find('service')) if (serviceMode(s.Spec) === 'replicated') this.known.add(s.ID);
  }

  protected onEvent(ev: ChangeEvent): void {
    if (ev.kind === 'service') {
      const mine = serviceMode(ev.object.Spec) === 'replicated';
      if (ev.action === 'delete') {
        if (mine) this.markDirty(ev.object.ID);
        return;
      }
      if (mine) this.known.add(ev.object.ID);
      // A mode change away from replicated also needs this loop to let go of its tasks.
      if (mine || this.known.has(ev.object.ID)) this.markDirty(ev.object.ID);
      return;
    }
    if (ev.kind !== 'task' || !this.known.has(ev.object.ServiceID)) return;
    // Only changes that can change a slot's count: a task deleted, or its desired state moved.
    if (ev.action === 'delete' || (ev.action === 'update' && ev.old?.DesiredState !== ev.object.DesiredState)) this.markDirty(ev.object.ServiceID);
  }

  protected async pass(keys: ReadonlySet<string>, all: boolean): Promise<void> {
    if (this.placer === null) return this.reconcile(keys, all, null);
    const placer = this.placer;
    return placer.exclusive(() => this.reconcile(keys, all, placer));
  }

  private async reconcile(keys: ReadonlySet<string>, all: boolean, placer: TaskPlacer | null): Promise<void> {
    let todo = [...new Set(all ? [...this.known, ...keys] : keys)];
    const nowIso = new Date(this.clock.now()).toISOString();
    /** Slots per service that this pass's transactions in flight are filling. */
    const creating = new Map<string, Set<number>>();
    /** Each service's slots as committed, read once per pass: every round is built against the same committed state. */
    const committed = new Map<string, CommittedSlots>();
    /** Nodes for the new tasks of this pass, decided before they exist (from here to the rounds: no await). */
    const placements = placer === null ? new Map<string, Placements>() : this.placeScaleUps(placer, todo, committed);
    const commits: Promise<unknown>[] = [];
    for (let round = 0; round < this.maxTxInFlight && todo.length > 0; round++) {
      const left = { writes: MAX_WRITES_PER_TX };
      const unfinished: string[] = [];
      let built = false;
      const ids = todo;
      const commit = this.store.update((tx) => {
        for (const id of ids) {
          if (left.writes <= 0 || !this.reconcileService(tx, id, nowIso, left, creating, committed, placements, round > 0)) unfinished.push(id);
        }
        built = true;
      });
      commits.push(commit);
      todo = unfinished;
      // The store builds a transaction when update() is called; should it ever defer that, one at a time.
      if (!built) break;
      if (creating.size === 0) break; // nothing of this round can overlap with the next
    }
    // Creating tasks: a burst until a pass creates and leaves nothing over for the next one.
    if (creating.size > 0) this.burst?.hold();
    let settled: PromiseSettledResult<unknown>[];
    try {
      settled = await Promise.allSettled(commits);
    } finally {
      if (creating.size === 0 || todo.length === 0 || this.isStopped) this.burst?.release();
    }
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      this.burst?.release();
      throw failed.reason;
    }
    for (const id of todo) this.markDirty(id);
  }

  /**
   * Asks the placer for nodes for every scale-up among `ids` whose tasks need no network
   * attachment (those are created NEW for the allocator), as many as each service lacks. Fills
   * `committed` for them, as the rounds would.
   */
  private placeScaleUps(placer: TaskPlacer, ids: readonly string[], committed: Map<string, CommittedSlots>): Map<string, Placements> {
    const out = new Map<string, Placements>();
    this.store.view((tx) => {
      const wants: PlacementWant[] = [];
      for (const id of ids) {
        const svc = tx.get('service', id);
        if (svc === undefined || serviceMode(svc.Spec) !== 'replicated' || needsAllocation(svc.Spec)) continue;
        let base = committed.get(id);
        if (base === undefined) {
          base = committedSlots(svc, tx.find('task', byServiceId(id)));
          committed.set(id, base);
        }
        const lacking = replicasOf(svc.Spec) - base.occupied.length;
        if (lacking > 0) wants.push({ service: svc, count: lacking });
      }
      if (wants.length === 0) return;
      for (const [serviceId, list] of placer.placeNew(tx, wants) ?? []) out.set(serviceId, { list, next: 0 });
    });
    return out;
  }

  /**
   * Returns false when the write budget ran out before the service was done, or (`scaleUpOnly`:
   * a pipelined transaction) when the service needs anything but new tasks.
   */
  private reconcileService(
    tx: Tx,
    serviceId: string,
    nowIso: string,
    left: { writes: number },
    creating: Map<string, Set<number>>,
    committed: Map<string, CommittedSlots>,
    placements: ReadonlyMap<string, Placements>,
    scaleUpOnly: boolean,
  ): boolean {
    const svc = tx.get('service', serviceId);
    if (scaleUpOnly && (svc === undefined || serviceMode(svc.Spec) !== 'replicated')) return false;
    if (svc === undefined || serviceMode(svc.Spec) !== 'replicated') {
      const tasks = tx.find('task', byServiceId(serviceId));
      this.known.delete(serviceId);
      // Deleted (or now another mode, whose orchestrator creates its own tasks): retire ours.
      if (svc !== undefined && serviceMode(svc.Spec) !== 'replicated') {
        return retire(tx, tasks.filter((t) => t.Slot > 0), left);
      }
      return retire(tx, tasks, left);
    }
    // Read before this transaction writes anything of the service, so it is the committed state,
    // which the later rounds of the pass share (their transactions are built in the same tick).
    let base = committed.get(serviceId);
    if (base === undefined) {
      base = committedSlots(svc, tx.find('task', byServiceId(serviceId)));
      committed.set(serviceId, base);
    }
    const { tasks, occupied } = base;
    const inFlight = creating.get(serviceId) ?? new Set<number>();
    const reusable = base.empty.filter((slot) => !inFlight.has(slot));
    const want = replicasOf(svc.Spec);
    const filled = occupied.length + inFlight.size;
    if (scaleUpOnly && filled > want) return false;
    if (occupied.length > want) return this.scaleDown(tx, svc, tasks, occupied, occupied.length - want, left);
    if (filled < want) {
      const used = new Set([...occupied.map((o) => o.slot), ...inFlight]);
      return this.scaleUp(svc, tx, used, reusable, want - filled, nowIso, left, placements.get(serviceId), (slot) => {
        if (!creating.has(serviceId)) creating.set(serviceId, inFlight);
        inFlight.add(slot);
      });
    }
    return true;
  }

  /** `used`: slots taken (it grows); `placements`: nodes for the new tasks, in order; `created` hears every slot filled. */
  private scaleUp(
    svc: Service,
    tx: Tx,
    used: Set<number>,
    reusable: number[],
    n: number,
    nowIso: string,
    left: { writes: number },
    placements: Placements | undefined,
    created: (slot: number) => void,
  ): boolean {
    const reusableSet = new Set(reusable);
    const free = reusable.sort((a, b) => a - b).filter((s) => !used.has(s));
    let next = 1;
    let f = 0;
    for (let i = 0; i < n; i++) {
      if (left.writes <= 0) return false;
      let slot = free[f++];
      if (slot === undefined) {
        while (used.has(next) || reusableSet.has(next)) next++;
        slot = next;
      }
      const task = newTask(svc, { slot, desired: 'running', nowIso });
      const placing = task.Status.State === 'pending' && placements !== undefined && placements.next < placements.list.length;
      // A node's tasks go in one transaction (one entry, one assignment message): a node's group
      // that does not fit in what is left of this one waits for the next, unless no transaction could hold it.
      if (placing && startsGroupTooBig(placements, left.writes)) return false;
      used.add(slot);
      const placed = placing ? placements.list[placements.next++] : undefined;
      if (placed === undefined) tx.create('task', task);
      else {
        tx.create('task', assigned(task, placed));
        this.placedCount++;
      }
      created(slot);
      left.writes--;
    }
    return true;
  }

  private scaleDown(tx: Tx, svc: Service, all: readonly Task[], occupied: readonly { readonly slot: number; readonly tasks: Task[] }[], n: number, left: { writes: number }): boolean {
    // Tasks of this service per node, counting each slot's live task once.
    const perNode = new Map<string, number>();
    for (const t of all) if (isRunnable(t) && t.NodeID !== '') perNode.set(t.NodeID, (perNode.get(t.NodeID) ?? 0) + 1);
    const ranked = occupied.map((o) => {
      const live = o.tasks.filter(isRunnable);
      const running = live.some((t) => t.Status.State === 'running');
      const progress = Math.max(-1, ...live.map((t) => stateRank(t.Status.State)));
      const node = live.find((t) => t.NodeID !== '')?.NodeID ?? '';
      return { ...o, running, progress, nodeLoad: node === '' ? 0 : (perNode.get(node) ?? 0), node };
    });
    // Settled slots (nothing running) first, then not-yet-running, then by node load, then highest slot.
    ranked.sort((a, b) => Number(a.running) - Number(b.running) || a.progress - b.progress || b.nodeLoad - a.nodeLoad || b.slot - a.slot);
    // Removing from the busiest node lowers its load: re-rank greedily so removals spread over nodes.
    const chosen: typeof ranked = [];
    const pool = [...ranked];
    for (let i = 0; i < n && pool.length > 0; i++) {
      pool.sort((a, b) => Number(a.running) - Number(b.running) || a.progress - b.progress || b.nodeLoad - a.nodeLoad || b.slot - a.slot);
      const pick = pool.shift()!;
      chosen.push(pick);
      if (pick.node !== '') for (const p of pool) if (p.node === pick.node) p.nodeLoad--;
    }
    for (const c of chosen) {
      if (left.writes < c.tasks.length) return false;
      for (const t of c.tasks) {
        if (t.DesiredState === 'remove') continue;
        tx.update('task', removeTask(t));
        left.writes--;
      }
    }
    this.log.info({ service: svc.Spec.Name, removedSlots: chosen.map((c) => c.slot) }, 'scaled down');
    return true;
  }
}

/** A service's slots as committed: the filled ones, and the empty ones that may be reused. */
interface CommittedSlots {
  readonly tasks: readonly Task[];
  readonly occupied: readonly { readonly slot: number; readonly tasks: Task[] }[];
  /** Empty slots not all of whose tasks are being removed. */
  readonly empty: readonly number[];
}

function committedSlots(svc: Service, tasks: readonly Task[]): CommittedSlots {
  const templateKey = specKey(svc.Spec.TaskTemplate);
  const occupied: { slot: number; tasks: Task[] }[] = [];
  const empty: number[] = [];
  for (const [key, list] of groupBySlot(tasks.filter((t) => t.Slot > 0))) {
    const slot = Number(key.slice(5));
    if (slotCondition(svc, list, templateKey) !== 'empty') occupied.push({ slot, tasks: list });
    else if (!list.every((t) => t.DesiredState === 'remove')) empty.push(slot);
  }
  return { tasks, occupied, empty };
}

/** At the start of a node's group of placements, whether it is larger than `room` (and fits in one transaction). */
function startsGroupTooBig(p: Placements, room: number): boolean {
  const { list, next } = p;
  const node = list[next]!.nodeId;
  if (next > 0 && list[next - 1]!.nodeId === node) return false;
  let end = next;
  while (end < list.length && list[end]!.nodeId === node && end - next <= MAX_WRITES_PER_TX) end++;
  const size = end - next;
  return size > room && size <= MAX_WRITES_PER_TX;
}

/** A new task as the scheduler would have written it once placed: ASSIGNED to its node. */
function assigned(task: NewObject<'task'>, placed: Placed): NewObject<'task'> {
  const t: NewObject<'task'> & { AssignedGenericResources?: Placed['units'] } = { ...task, NodeID: placed.nodeId, Status: { ...task.Status, State: 'assigned', Message: ASSIGNED_MESSAGE } };
  if (placed.units !== undefined) t.AssignedGenericResources = placed.units;
  return t;
}

/** Desired REMOVE; a task no worker has seen yet is also marked stopped so nothing waits for it. */
export function removeTask(t: Task): Task {
  return stopTask(t, 'remove');
}

/**
 * Desired SHUTDOWN or REMOVE. A task that never reached a node (observed before ASSIGNED) is
 * also marked SHUTDOWN at once: no worker will ever report on it, and the scheduler must not place it.
 */
export function stopTask(t: Task, desired: 'shutdown' | 'remove'): Task {
  if (!reachedNode(t) && !isTerminal(t.Status.State)) {
    return { ...t, DesiredState: desired, Status: { ...t.Status, State: 'shutdown', Message: 'shut down before it was assigned to a node', Err: undefined } };
  }
  return { ...t, DesiredState: desired };
}

/** Every task given: desired REMOVE. False when the write budget ran out. */
export function retire(tx: Tx, tasks: readonly Task[], left: { writes: number }): boolean {
  for (const t of tasks) {
    if (t.DesiredState === 'remove') continue;
    if (left.writes <= 0) return false;
    tx.update('task', removeTask(t));
    left.writes--;
  }
  return true;
}
