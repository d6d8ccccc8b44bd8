// Batches the agent's task status reports: the latest status per task waits here until a session
// can send it; up to `maxBatch` go in one UpdateTaskStatus call, at most every `batchMs`. A status
// leaves the queue only when the manager acknowledged it (a newer status for the same task that
// arrived meanwhile stays). Offline, reports accumulate (one per task: bounded by the task count).
//
// A step the task is passing through (ACCEPTED, PREPARING, READY, STARTING) waits up to `transientHoldMs`
// from the moment the task entered it for the state that follows: a task whose steps each take
// less than that is reported once, with the state it settles in (RUNNING, or a failure), instead of
// once per step — each item costs the manager a store update. A task that stays in such a step
// longer than the hold is reported in that step. (The hold counts from the step, not from the
// task's first unsent change: a worker taking a burst of tasks at once may need longer than the
// hold for a task's whole ACCEPTED → RUNNING chain while no single step is slow.) READY is such a
// step too: the runner goes on to STARTING at once, unless the task's desired state parks it at
// READY (a restart delay, a stop-first update's new task) — then READY is reported when its hold
// ends, which delays only the manager's view of it (the orchestrators do not wait for it). Without
// READY held, an agent given a burst of tasks in one message reported READY and RUNNING apart for
// many of them (1.13–1.56 items per task in bench:cluster at 200 workers; 1.00 with it held).
import type { Logger } from 'pino';

import type { TaskState, TaskStatus } from '../../manager/store/types.js';

export type SendStatuses = (updates: readonly { readonly taskId: string; readonly status: TaskStatus }[]) => Promise<readonly { readonly taskId: string; readonly reason: string }[]>;

export interface StatusReporterOptions {
  readonly batchMs: number;
  readonly maxBatch: number;
  /** How long a task's ACCEPTED, PREPARING, READY or STARTING status may wait for the next one (0: never). */
  readonly transientHoldMs: number;
  readonly logger: Logger;
}

/** States a task passes through on its way to RUNNING; the next one usually follows within milliseconds. */
const TRANSIENT: ReadonlySet<TaskState> = new Set<TaskState>(['accepted', 'preparing', 'ready', 'starting']);

interface Pending {
  readonly status: TaskStatus;
  /** When the task entered this status's state (performance.now() ms): a held step is held from here. */
  readonly sinceMs: number;
}

export class StatusReporter {
  private readonly dirty = new Map<string, Pending>();
  private send: SendStatuses | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** When the pending timer fires (performance.now() ms). */
  private timerDueMs = 0;
  private sending = false;
  private closed = false;

  constructor(private readonly opts: StatusReporterOptions) {}

  get pending(): number {
    return this.dirty.size;
  }

  report(taskId: string, status: TaskStatus): void {
    if (this.closed) return;
    const before = this.dirty.get(taskId);
    const nowMs = performance.now();
    // The same step reported again (the agent answering a manager that is behind) keeps its start.
    const p: Pending = { status, sinceMs: before !== undefined && before.status.State === status.State ? before.sinceMs : nowMs };
    this.dirty.set(taskId, p);
    // Only this task's entry changed: the next flush is due no later than when it becomes sendable
    // (an armed timer that fires sooner stays). No scan of every pending status per report.
    this.schedule(this.sendableAtMs(p), nowMs);
  }

  /** Forgets a task (it left the assignment set). */
  forget(taskId: string): void {
    this.dirty.delete(taskId);
  }

  /** A session is up (send through it) or down (null). */
  setSender(send: SendStatuses | null): void {
    this.send = send;
    if (send !== null) this.schedule();
  }

  close(): void {
    this.closed = true;
    this.send = null;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** When `p` may be sent: at once, or once its hold is over. */
  private sendableAtMs(p: Pending): number {
    return TRANSIENT.has(p.status.State) ? p.sinceMs + this.opts.transientHoldMs : 0;
  }

  /**
   * Arms the timer for the next flush: `batchMs` from now, or later when every pending status is
   * held (then when the first hold ends). An armed timer that fires sooner is kept. `firstMs`: when
   * the first pending status is sendable, if the caller knows (else every pending one is looked at).
   */
  private schedule(firstMs?: number, nowMs = performance.now()): void {
    if (this.closed || this.send === null || this.sending || this.dirty.size === 0) return;
    // No flush can be due sooner than batchMs from now: an armed timer within that stays.
    if (this.timer !== null && this.timerDueMs <= nowMs + this.opts.batchMs) return;
    if (firstMs === undefined || this.timer === null) {
      // No timer armed (or none given): the earliest of every pending status decides.
      firstMs = Infinity;
      for (const p of this.dirty.values()) {
        firstMs = Math.min(firstMs, this.sendableAtMs(p));
        if (firstMs <= nowMs) break;
      }
    }
    const dueMs = Math.max(nowMs + this.opts.batchMs, firstMs);
    if (this.timer !== null && this.timerDueMs <= dueMs) return;
    this.clearTimer();
    this.timerDueMs = dueMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, dueMs - nowMs);
  }

  private async flush(): Promise<void> {
    const send = this.send;
    if (send === null || this.sending || this.dirty.size === 0) return;
    const nowMs = performance.now();
    const batch: { readonly taskId: string; readonly status: TaskStatus }[] = [];
    for (const [taskId, p] of this.dirty) {
      if (batch.length >= this.opts.maxBatch) break;
      if (this.sendableAtMs(p) <= nowMs) batch.push({ taskId, status: p.status });
    }
    if (batch.length === 0) {
      this.schedule();
      return;
    }
    this.sending = true;
    try {
      const refused = await send(batch);
      for (const r of refused) this.opts.logger.warn({ taskId: r.taskId, reason: r.reason }, 'agent: the manager refused a task status');
      for (const u of batch) if (this.dirty.get(u.taskId)?.status === u.status) this.dirty.delete(u.taskId);
    } catch (err) {
      // The session will end on its own if the manager is gone; the statuses stay queued for the next one.
      this.opts.logger.debug({ err }, 'agent: status report failed; kept for the next attempt');
    } finally {
      this.sending = false;
    }
    this.schedule();
  }
}
