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
// A big scale-up (more than one transaction's worth of new tasks) is committed by one pass as a
// window of transactions: up to `maxTxInFlight` are in flight at once, so their Raft round trips
// overlap, and the next is built as soon as the oldest has committed. All but the first are built
// against the slots as committed when the pass began plus the slots the pass is creating, and do
// scale-ups only (anything else waits for the next pass); the nodes were decided once, at the start
// (a node changed since gets nothing more from that list: the rest is created PENDING for the
// scheduler loop). If a transaction fails, no more are built, and the pass fails once those in
// flight have settled; the next one decides from committed state, as after any failed pass.
// Default 4. (Until session 8 a pass ended after its `maxTxInFlight` transactions and the next pass
// read and placed the remainder again: 10,000 replicas cost three passes and 18,000 placements.)
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
  /** Each node's version when the list was decided: a node changed since (down, drained, relabelled) voids the rest of the list. */
  readonly nodeVersions: ReadonlyMap<string, number>;
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
    /** Slots per service that this pass's transactions (in flight or committed) are filling. */
    const creating = new Map<string, Set<number>>();
    /** Each service's slots as committed, read once per pass: every round is built against the same committed state. */
    const committed = new Map<string, CommittedSlots>();
    /** Nodes for the new tasks of this pass, decided before they exist (from here to the first round: no await). */
    const placements = placer === null ? new Map<string, Placements>() : this.placeScaleUps(placer, todo, committed);
    /** Each round's commit, settled: null, or what it failed with. */
    const outcomes: Promise<{ readonly err: unknown } | null>[] = [];
    let thrown: { readonly err: unknown } | null = null;
    try {
      for (let round = 0; todo.length > 0; round++) {
        if (round >= this.maxTxInFlight) {
          // A window of transactions: the next one is built once the oldest in flight committed.
          // A failed one ends the pass (it is among the outcomes below), as does a stop.
          const oldest = await outcomes[round - this.maxTxInFlight]!;
          if (oldest !== null || this.isStopped) break;
        }
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
        outcomes.push(commit.then(() => null, (err: unknown) => ({ err })));
        todo = unfinished;
        // The store builds a transaction when update() is called; should it ever defer that, one at a time.
        if (!built) break;
        // Creating tasks: a burst until the pass has committed them all.
        if (creating.size > 0) this.burst?.hold();
        // Only scale-ups follow one another in a pass: a round that wrote nothing leaves the rest to the next pass.
        if (creating.size === 0 || left.writes === MAX_WRITES_PER_TX) break;
      }
    } catch (err) {
      thrown = { err };
    }
    const results = await Promise.all(outcomes);
    const failed = thrown ?? results.find((r) => r !== null) ?? null;
    if (failed !== null || creating.size === 0 || todo.length === 0 || this.isStopped) this.burst?.release();
    if (failed !== null) throw failed.err;
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
      const nodeVersions = new Map<string, number>();
      for (const [serviceId, list] of placer.placeNew(tx, wants) ?? []) {
        out.set(serviceId, { list, next: 0, nodeVersions });
        for (const p of list) if (!nodeVersions.has(p.nodeId)) nodeVersions.set(p.nodeId, tx.get('node', p.nodeId)?.Version.Index ?? -1);
      }
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
      const list = task.Status.State === 'pending' && placements !== undefined && placements.next < placements.list.length ? placements : undefined;
      // A node's tasks go in one transaction (one entry, one assignment message): a node's group
      // that does not fit in what is left of this one waits for the next, unless no transaction could hold it.
      if (list !== undefined && startsGroupTooBig(list, left.writes)) return false;
      // Later rounds are built after earlier commits landed: a node that changed meanwhile gets
      // nothing more from this list, and the tasks left over are created PENDING for the scheduler loop.
      if (list !== undefined && !nodeUnchanged(tx, list)) list.next = list.list.length;
      used.add(slot);
      const placed = list !== undefined && list.next < list.list.length ? list.list[list.next++] : undefined;
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

/** At the start of a node's group of placements, whether the node is still as it was when the list was decided. */
function nodeUnchanged(tx: ReadTx, p: Placements): boolean {
  const { list, next } = p;
  const node = list[next]!.nodeId;
  if (next > 0 && list[next - 1]!.nodeId === node) return true;
  return tx.get('node', node)?.Version.Index === p.nodeVersions.get(node);
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
