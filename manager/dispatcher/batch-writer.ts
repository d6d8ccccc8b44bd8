// The dispatcher's only way to write: node state changes and task status reports from many
// sessions are queued, merged (latest per node, furthest per task) and committed together — one
// store transaction (one Raft entry) per batch of at most `maxBatchItems` — after at most
// `maxBatchIntervalMs`, or at once when a batch is full. What arrives while a commit is in flight
// forms the next batch (group commit), written as soon as that commit ends. Under load (a full
// batch waiting, or the window ended while commits are in flight) up to `maxInflightCommits`
// batches are in flight at once, so Raft round trips overlap instead of queueing; a change of a
// node or task that is in a commit in flight waits (in a queue of its own) for that commit to end
// (batches in flight never touch one object twice, so they cannot conflict with each other).
// Callers await their item's commit.
import type { Logger } from 'pino';

import { SequenceConflictError, TransactionTooLargeError } from '../store/errors.js';
import type { MemoryStore, Tx } from '../store/memory-store.js';
import type { Node, NodeDescription, NodeRole, NodeState, TaskStatus } from '../store/types.js';
import { DispatcherError } from './errors.js';
import { taskStateRank, workerTransitionRefusal } from './task-transitions.js';

export type NodeChange =
  /** A session opened: the node is ready, with what it says about itself and where it called from. */
  | { readonly kind: 'ready'; readonly description: NodeDescription | null; readonly role: NodeRole; readonly addr: string }
  /** Heartbeats stopped (down), or a new leader has not heard from it yet (unknown). */
  | { readonly kind: 'not-ready'; readonly state: Exclude<NodeState, 'ready'>; readonly message: string };

export interface BatchWriterOptions {
  readonly store: MemoryStore;
  readonly logger: Logger;
  readonly maxBatchItems: number;
  readonly maxBatchIntervalMs: number;
  /** Most items queued (not yet in a commit); beyond it enqueueTaskStatus throws ERR_DISPATCHER_BUSY. */
  readonly maxPendingItems: number;
  /** Most batches committing at once (default 1: one at a time). */
  readonly maxInflightCommits?: number;
}

interface Waiters<T> {
  readonly resolve: ((v: T) => void)[];
  readonly reject: ((e: Error) => void)[];
}

interface PendingNode extends Waiters<void> {
  change: NodeChange;
}

/** The task status items of one request: answered once, when the last of them is written. */
interface StatusGroup {
  remaining: number;
  readonly refused: { taskId: string; reason: string }[];
  readonly resolve: (refused: { taskId: string; reason: string }[]) => void;
  readonly reject: (e: Error) => void;
  settled: boolean;
}

interface PendingTask {
  readonly nodeId: string;
  status: TaskStatus;
  /** The requests waiting for this task's write (usually one). */
  readonly groups: StatusGroup[];
}

type Item = { readonly type: 'node'; readonly id: string; readonly p: PendingNode } | { readonly type: 'task'; readonly id: string; readonly p: PendingTask };

/** Retries of a batch that lost an optimistic-concurrency race with another writer. */
const MAX_CONFLICT_RETRIES = 5;

const NODE_ROLE_OF_CERT: Readonly<Record<string, NodeRole>> = { 'swarm-manager': 'manager', 'swarm-worker': 'worker' };

export function nodeRoleOfCertificate(role: string): NodeRole {
  return NODE_ROLE_OF_CERT[role] ?? 'worker';
}

/** Same fields with the same primitive values (a nested value: compared by JSON). */
function sameFields(a: object | undefined, b: object | undefined): boolean {
  if (a === b) return true;
  const x = (a ?? {}) as Record<string, unknown>;
  const y = (b ?? {}) as Record<string, unknown>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  for (const k of keys) {
    const v = x[k];
    if (v === y[k] && (v !== undefined || Object.prototype.hasOwnProperty.call(y, k))) continue;
    if (typeof v !== 'object' || v === null || JSON.stringify(v) !== JSON.stringify(y[k])) return false;
  }
  return true;
}

function sameStatus(a: TaskStatus, b: TaskStatus): boolean {
  return a.State === b.State && a.Message === b.Message && (a.Err ?? '') === (b.Err ?? '') && sameFields(a.ContainerStatus, b.ContainerStatus);
}

function settle(g: StatusGroup, taskId: string, reason: string | null): void {
  if (g.settled) return;
  if (reason !== null) g.refused.push({ taskId, reason });
  if (--g.remaining > 0) return;
  g.settled = true;
  g.resolve(g.refused);
}

function fail(g: StatusGroup, err: Error): void {
  if (g.settled) return;
  g.settled = true;
  g.reject(err);
}

export class BatchWriter {
  private readonly nodes = new Map<string, PendingNode>();
  private readonly tasks = new Map<string, PendingTask>();
  /** Changes of nodes and tasks that are in a commit in flight: queued for the batch after it. */
  private readonly waitingNodes = new Map<string, PendingNode>();
  private readonly waitingTasks = new Map<string, PendingTask>();
  private timer: NodeJS.Timeout | null = null;
  private inflight = 0;
  /** Nodes and tasks in a commit in flight. */
  private readonly busyNodes = new Set<string>();
  private readonly busyTasks = new Set<string>();
  private closed = false;
  /** Transactions committed and items written, for tests and benchmarks. */
  readonly stats = { commits: 0, items: 0, refused: 0 };

  constructor(private readonly opts: BatchWriterOptions) {}

  get pending(): number {
    return this.nodes.size + this.tasks.size + this.waitingNodes.size + this.waitingTasks.size;
  }

  /** Queued items that may go into the next batch (not waiting for a commit in flight). */
  private get ready(): number {
    return this.nodes.size + this.tasks.size;
  }

  enqueueNode(nodeId: string, change: NodeChange): Promise<void> {
    this.assertOpen();
    return new Promise((resolve, reject) => {
      const queue = this.busyNodes.has(nodeId) ? this.waitingNodes : this.nodes;
      const p = queue.get(nodeId);
      if (p === undefined) queue.set(nodeId, { change, resolve: [resolve], reject: [reject] });
      else {
        // The latest change wins: a node that re-registered before its "down" was written stays ready.
        p.change = change;
        p.resolve.push(resolve);
        p.reject.push(reject);
      }
      this.schedule();
    });
  }

  /** Resolves with null once written (or already so), or with the reason it was refused. */
  async enqueueTaskStatus(nodeId: string, taskId: string, status: TaskStatus): Promise<string | null> {
    const refused = await this.enqueueTaskStatuses(nodeId, [{ taskId, status }]);
    return refused[0]?.reason ?? null;
  }

  /**
   * The status items of one request (tasks of `nodeId`): resolves once every one is written (or
   * already so), with those refused and why — one promise per request, not per item.
   */
  enqueueTaskStatuses(nodeId: string, updates: readonly { readonly taskId: string; readonly status: TaskStatus }[]): Promise<{ taskId: string; reason: string }[]> {
    this.assertOpen();
    if (updates.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      const g: StatusGroup = { remaining: updates.length, refused: [], resolve, reject, settled: false };
      for (const { taskId, status } of updates) {
        const queue = this.busyTasks.has(taskId) ? this.waitingTasks : this.tasks;
        const p = queue.get(taskId);
        if (p === undefined) queue.set(taskId, { nodeId, status, groups: [g] });
        else {
          // Two reports of one task in one batch: keep the furthest along (equal: the later one).
          if (taskStateRank(status.State) >= taskStateRank(p.status.State)) p.status = status;
          p.groups.push(g);
        }
      }
      this.schedule();
    });
  }

  /** Rejects everything queued; later enqueues throw. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const err = new DispatcherError('ERR_DISPATCHER_STOPPED', reason);
    for (const p of [...this.nodes.values(), ...this.waitingNodes.values()]) for (const r of p.reject) r(err);
    for (const p of [...this.tasks.values(), ...this.waitingTasks.values()]) for (const g of p.groups) fail(g, err);
    this.nodes.clear();
    this.tasks.clear();
    this.waitingNodes.clear();
    this.waitingTasks.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new DispatcherError('ERR_DISPATCHER_STOPPED', 'the dispatcher is stopped');
    if (this.pending >= this.opts.maxPendingItems) {
      throw new DispatcherError('ERR_DISPATCHER_BUSY', `dispatcher: ${this.pending} status updates are waiting to be written (limit ${this.opts.maxPendingItems}); retry shortly`);
    }
  }

  private get maxInflight(): number {
    return Math.max(1, this.opts.maxInflightCommits ?? 1);
  }

  private schedule(): void {
    if (this.closed) return;
    // A commit in flight flushes what is queued when it ends; a full batch may go beside it.
    if (this.ready >= this.opts.maxBatchItems && this.inflight < this.maxInflight) {
      this.flush();
      return;
    }
    if (this.inflight > 0) return;
    this.timer ??= setTimeout(() => this.flush(), this.opts.maxBatchIntervalMs);
  }

  /** Up to maxBatchItems of the ready items (none of them is in a commit in flight). */
  private take(): Item[] {
    const out: Item[] = [];
    for (const [id, p] of this.nodes) {
      if (out.length >= this.opts.maxBatchItems) break;
      out.push({ type: 'node', id, p });
      this.nodes.delete(id);
    }
    for (const [id, p] of this.tasks) {
      if (out.length >= this.opts.maxBatchItems) break;
      out.push({ type: 'task', id, p });
      this.tasks.delete(id);
    }
    return out;
  }

  /** A commit ended: its nodes and tasks are free again, and what waited for them is ready. */
  private release(batch: readonly Item[]): void {
    for (const item of batch) {
      if (item.type === 'node') {
        this.busyNodes.delete(item.id);
        const w = this.waitingNodes.get(item.id);
        if (w === undefined) continue;
        this.waitingNodes.delete(item.id);
        this.nodes.set(item.id, w);
      } else {
        this.busyTasks.delete(item.id);
        const w = this.waitingTasks.get(item.id);
        if (w === undefined) continue;
        this.waitingTasks.delete(item.id);
        this.tasks.set(item.id, w);
      }
    }
  }

  /** Starts commits of what is queued, while fewer than maxInflightCommits are in flight. */
  private flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    // Bounded: each round starts a commit of at least one item or stops.
    while (!this.closed && this.ready > 0 && this.inflight < this.maxInflight) {
      const batch = this.take();
      for (const item of batch) (item.type === 'node' ? this.busyNodes : this.busyTasks).add(item.id);
      this.inflight++;
      void this.commit(batch, 0)
        .catch((err: unknown) => this.opts.logger.error({ err }, 'dispatcher: a status batch failed unexpectedly'))
        .finally(() => {
          this.release(batch);
          this.inflight--;
          // What arrived meanwhile forms the next batch, at once (group commit).
          if (this.ready > 0) this.flush();
        });
      // One commit at a time unless a full batch is waiting (load): then they overlap.
      if (this.ready < this.opts.maxBatchItems) break;
    }
  }

  private async commit(batch: readonly Item[], attempt: number): Promise<void> {
    if (batch.length === 0) return;
    let refusals: Map<string, string>;
    try {
      ({ result: refusals } = await this.opts.store.update((tx) => this.apply(tx, batch)));
    } catch (err) {
      if (err instanceof SequenceConflictError && attempt < MAX_CONFLICT_RETRIES) return this.commit(batch, attempt + 1);
      if (err instanceof TransactionTooLargeError && batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        await this.commit(batch.slice(0, half), 0);
        return this.commit(batch.slice(half), 0);
      }
      this.opts.logger.warn({ err, items: batch.length }, 'dispatcher: a batch of node and task status changes could not be written');
      for (const item of batch) {
        if (item.type === 'node') for (const r of item.p.reject) r(err as Error);
        else for (const g of item.p.groups) fail(g, err as Error);
      }
      return;
    }
    this.stats.commits++;
    this.stats.items += batch.length;
    this.stats.refused += refusals.size;
    for (const item of batch) {
      if (item.type === 'node') for (const r of item.p.resolve) r();
      else {
        const reason = refusals.size > 0 ? (refusals.get(item.id) ?? null) : null;
        for (const g of item.p.groups) settle(g, item.id, reason);
      }
    }
  }

  /** Runs inside the transaction: may run again on a retry, so it only reads and writes `tx`. */
  private apply(tx: Tx, batch: readonly Item[]): Map<string, string> {
    const refusals = new Map<string, string>();
    for (const item of batch) {
      if (item.type === 'node') this.applyNode(tx, item.id, item.p.change);
      else {
        const reason = this.applyTask(tx, item.id, item.p);
        if (reason !== null) refusals.set(item.id, reason);
      }
    }
    return refusals;
  }

  private applyNode(tx: Tx, nodeId: string, change: NodeChange): void {
    const node = tx.get('node', nodeId);
    if (change.kind === 'ready') {
      const status = { State: 'ready' as const, Addr: change.addr };
      if (node === undefined) {
        tx.create('node', {
          ID: nodeId,
          Spec: { Role: change.role, Availability: 'active' },
          ...(change.description !== null ? { Description: change.description } : {}),
          Status: status,
        });
        return;
      }
      const description = change.description ?? node.Description;
      const unchanged = node.Status.State === 'ready' && node.Status.Addr === change.addr && node.Status.Message === undefined && JSON.stringify(description) === JSON.stringify(node.Description);
      if (unchanged) return;
      tx.update('node', { ...node, ...(description !== undefined ? { Description: description } : {}), Status: status } satisfies Node);
      return;
    }
    if (node === undefined || node.Status.State === change.state) return;
    tx.update('node', { ...node, Status: { ...node.Status, State: change.state, Message: change.message } } satisfies Node);
  }

  private applyTask(tx: Tx, taskId: string, p: PendingTask): string | null {
    const task = tx.get('task', taskId);
    if (task === undefined) return `task ${taskId} no longer exists`;
    if (task.NodeID !== p.nodeId) return `task ${taskId} is assigned to node ${task.NodeID}, not ${p.nodeId}`;
    const refusal = workerTransitionRefusal(task.Status.State, p.status.State);
    if (refusal !== null) {
      this.opts.logger.warn({ taskId, nodeId: p.nodeId, from: task.Status.State, to: p.status.State }, `dispatcher: refused task status update: ${refusal}`);
      return refusal;
    }
    if (sameStatus(task.Status, p.status)) return null;
    tx.update('task', { ...task, Status: p.status });
    return null;
  }
}
