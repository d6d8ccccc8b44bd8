// The scheduler loop: feeds the pure scheduler (`scheduler/`) from the store and commits its
// decisions.
//
//   watch(task, node, service) ─► "a pass is due" when a task waits for a node, or when
//   something that could make room changed (a node, a task stopping) while tasks are left over
//        │
//        ▼
//   pass: ALLOCATOR SEAM (new → pending) ─► read nodes, tasks holding resources, pending tasks
//         ─► schedule() ─► one transaction: assigned tasks → ASSIGNED with their node;
//            unplaced tasks keep PENDING with the reason in Status.Err (only when it changed)
//
// The commit is one transaction per pass (split only past MAX_WRITES_PER_TX writes, the chunks
// proposed together and cut at node boundaries: each node's new tasks land in one Raft entry, so
// the dispatcher sends each node one message per pass). If it fails because a task changed
// meanwhile, the pass runs again on fresh state.
//
// Bursts: while the replicated orchestrator is still committing a scale-up (`CreationBurst` held),
// a due pass waits — the new tasks gather — and runs the moment the burst is released (at most
// `maxBurstHoldMs` after it began to wait, then again every `maxBurstHoldMs` while the burst lasts).
// A lone task's burst ends with its one commit: nothing waits on a timer on its way.
//
// Placed at creation: the replicated orchestrator creates most scale-ups' tasks already ASSIGNED
// through the same scheduler (`Placement`, placement.ts); this loop and it decide under one lock.
//
// Allocator seam: on a manager, `manager/allocator` moves tasks NEW → PENDING after giving them
// their network attachments, and this loop works from PENDING only (`allocatorAdmits: true`, as
// leader-services starts it). Where no allocator runs (the orchestrator tests' harness), this loop
// admits NEW tasks itself (`admitNewTasks`), without network attachments.
import type { Logger } from 'pino';
import { schedule } from '../../scheduler/index.js';
import type { CreationBurst } from '../orchestrator/burst.js';
import type { Clock, TimerHandle } from '../orchestrator/clock.js';
import { MAX_WRITES_PER_TX, ReconcileLoop } from '../orchestrator/loop.js';
import { ASSIGNED_MESSAGE, type TaskPlacer } from '../orchestrator/placer.js';
import { holdsResources } from '../orchestrator/task-state.js';
import type { MemoryStore, ReadTx, Tx } from '../store/memory-store.js';
import { clusterState, wantsNode, type TaskWithUnits } from './placement.js';
import type { ChangeEvent } from '../store/watch.js';

export interface SchedulerLoopOptions {
  readonly store: MemoryStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The allocator moves tasks NEW → PENDING (default false: this loop admits them itself). */
  readonly allocatorAdmits?: boolean;
  /** The replicated orchestrator's creation burst (`Orchestrators.burst`): passes wait while it is held. */
  readonly burst?: CreationBurst;
  /** Longest a due pass waits for a burst to end (default 3,000 ms). */
  readonly maxBurstHoldMs?: number;
  /** Shared with the replicated orchestrator (`OrchestratorsOptions.placer`): a pass decides and commits under its lock. */
  readonly placer?: TaskPlacer;
}

const DEFAULT_MAX_BURST_HOLD_MS = 3_000;

const PASS_KEY = 'pass';

export interface PassReport {
  readonly admitted: number;
  readonly assigned: number;
  readonly unplaced: number;
}

export class SchedulerLoop extends ReconcileLoop {
  /** Tasks left pending by the last pass: while there are some, anything that frees room triggers a pass. */
  private leftOver = 0;
  private last: PassReport = { admitted: 0, assigned: 0, unplaced: 0 };

  private readonly allocatorAdmits: boolean;
  private readonly burst: CreationBurst | null;
  private readonly maxBurstHoldMs: number;
  private readonly placer: TaskPlacer | null;
  private readonly unsubscribe: () => void;
  /** When a due pass began to wait for the burst (clock ms), and the timer that ends the wait. */
  private heldSince: number | null = null;
  private holdTimer: TimerHandle | null = null;
  private heldCount = 0;

  constructor(opts: SchedulerLoopOptions) {
    super(opts, 'scheduler-loop', ['task', 'node', 'service']);
    this.allocatorAdmits = opts.allocatorAdmits === true;
    this.burst = opts.burst ?? null;
    this.maxBurstHoldMs = Math.max(0, opts.maxBurstHoldMs ?? DEFAULT_MAX_BURST_HOLD_MS);
    this.placer = opts.placer ?? null;
    this.unsubscribe = this.burst?.onRelease(() => this.wake()) ?? (() => undefined);
  }

  override async stop(): Promise<void> {
    this.unsubscribe();
    this.endHold();
    await super.stop();
  }

  /** Passes that waited for a creation burst before running (tests, logs). */
  get heldPasses(): number {
    return this.heldCount;
  }

  protected override passHeld(): boolean {
    if (this.burst === null || !this.burst.active || this.isStopped) {
      this.endHold();
      return false;
    }
    const now = this.clock.now();
    if (this.heldSince === null) {
      this.heldSince = now;
      this.heldCount++;
      this.holdTimer = this.clock.setTimer(this.maxBurstHoldMs, () => {
        this.holdTimer = null;
        this.wake();
      });
    }
    if (now - this.heldSince < this.maxBurstHoldMs) return true;
    this.endHold();
    return false;
  }

  private endHold(): void {
    this.heldSince = null;
    this.holdTimer?.cancel();
    this.holdTimer = null;
  }

  /** What the last pass did (tests, logs). */
  get lastPass(): PassReport {
    return this.last;
  }

  protected resync(_tx: ReadTx): void {}

  protected onEvent(ev: ChangeEvent): void {
    switch (ev.kind) {
      case 'node':
        // Resources, labels, availability or state: all can change where tasks fit.
        if (this.leftOver > 0 || ev.action !== 'update' || ev.old?.Status.State !== ev.object.Status.State) this.markDirty(PASS_KEY);
        return;
      case 'service':
        if (this.leftOver > 0) this.markDirty(PASS_KEY);
        return;
      case 'task': {
        const t = ev.object;
        const waits = t.Status.State === 'pending' || (!this.allocatorAdmits && (t.Status.State === 'new' || t.Status.State === 'allocated'));
        if (ev.action !== 'delete' && wantsNode(t) && waits) {
          // Our own write of a reason comes back as an event too; it needs no new pass.
          if (!(ev.action === 'update' && ev.old?.Status.State === 'pending' && t.Status.State === 'pending' && ev.old.DesiredState === t.DesiredState)) this.markDirty(PASS_KEY);
          return;
        }
        if (this.leftOver === 0) return;
        const freed = ev.action === 'delete' || (ev.old !== undefined && holdsResources(ev.old) && !holdsResources(t)) || (ev.old !== undefined && ev.old.DesiredState !== t.DesiredState);
        if (freed) this.markDirty(PASS_KEY);
        return;
      }
      default:
        return;
    }
  }

  protected async pass(): Promise<void> {
    if (this.placer === null) return this.placeAndCommit();
    return this.placer.exclusive(() => this.placeAndCommit());
  }

  private async placeAndCommit(): Promise<void> {
    const nowIso = new Date(this.clock.now()).toISOString();
    const admitted = this.allocatorAdmits ? 0 : await this.admitNewTasks(nowIso);
    const plan = this.plan();
    // Assignments grouped by node (decision order within a node), so that chunks can be cut
    // between nodes: a node's new tasks come in one entry, and the dispatcher sends it one message.
    const byNode = new Map<string, TaskWithUnits[]>();
    for (const [taskId, nodeId] of plan.result.assignments) {
      const t = plan.pending.get(taskId)!;
      const units = plan.result.genericResources.get(taskId);
      let list = byNode.get(nodeId);
      if (list === undefined) byNode.set(nodeId, (list = []));
      list.push({
        ...t,
        NodeID: nodeId,
        Status: { ...t.Status, State: 'assigned', Message: ASSIGNED_MESSAGE, Err: undefined, Timestamp: nowIso },
        ...(units !== undefined ? { AssignedGenericResources: units } : {}),
      });
    }
    const groups: TaskWithUnits[][] = [...byNode.values()];
    const reasons: TaskWithUnits[] = [];
    for (const [taskId, reason] of plan.result.unplaced) {
      const t = plan.pending.get(taskId)!;
      if (t.Status.Err === reason) continue;
      reasons.push({ ...t, Status: { ...t.Status, Err: reason, Message: 'pending task scheduling' } });
    }
    if (reasons.length > 0) groups.push(reasons);
    // The chunks touch distinct tasks, decided against one view: proposed together, their Raft
    // round trips overlap. A failed chunk fails the pass (its tasks stay pending for the next one).
    const commits: Promise<unknown>[] = [];
    for (const chunk of chunksByGroup(groups, MAX_WRITES_PER_TX)) {
      commits.push(
        this.store.update((tx) => {
          for (const next of chunk) tx.update('task', next);
        }),
      );
    }
    const failed = (await Promise.allSettled(commits)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    this.leftOver = plan.result.unplaced.size;
    this.last = { admitted, assigned: plan.result.assignments.size, unplaced: plan.result.unplaced.size };
    if (plan.result.assignments.size > 0 || plan.result.unplaced.size > 0) {
      this.log.debug({ ...this.last, nodes: plan.nodes }, 'scheduling pass');
    }
  }

  /**
   * Only where no allocator runs (`allocatorAdmits` false): NEW → PENDING for every task that is
   * still wanted, and NEW → SHUTDOWN for tasks stopped before they got this far. On a manager the
   * allocator does this after giving the task its network attachments.
   */
  private async admitNewTasks(nowIso: string): Promise<number> {
    const fresh = this.store.find('task').filter((t) => t.Status.State === 'new' || t.Status.State === 'allocated');
    let n = 0;
    for (let i = 0; i < fresh.length; i += MAX_WRITES_PER_TX) {
      const chunk = fresh.slice(i, i + MAX_WRITES_PER_TX);
      await this.store.update((tx: Tx) => {
        for (const t of chunk) {
          if (wantsNode(t)) tx.update('task', { ...t, Status: { ...t.Status, State: 'pending', Message: 'pending task scheduling', Timestamp: nowIso } });
          else tx.update('task', { ...t, Status: { ...t.Status, State: 'shutdown', Message: 'shut down before it was scheduled', Timestamp: nowIso } });
          n++;
        }
      });
    }
    return n;
  }

  private plan(): { result: ReturnType<typeof schedule>; pending: Map<string, TaskWithUnits>; nodes: number } {
    const state = this.store.view(clusterState);
    const { nodes, placedTasks, pendingTasks, pending } = state;
    const result = pendingTasks.length === 0 ? { assignments: new Map(), unplaced: new Map(), genericResources: new Map() } : schedule({ nodes, placedTasks, pendingTasks });
    return { result, pending, nodes: nodes.length };
  }
}

/**
 * Chunks of at most `max` items, each group whole in one chunk where it fits (a group larger than
 * `max` is split over chunks of its own). Order is kept.
 */
export function chunksByGroup<T>(groups: readonly (readonly T[])[], max: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  for (const g of groups) {
    if (cur.length > 0 && cur.length + g.length > max) {
      out.push(cur);
      cur = [];
    }
    for (const item of g) {
      if (cur.length >= max) {
        out.push(cur);
        cur = [];
      }
      cur.push(item);
    }
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
