// Batches the agent's task status reports: the latest status per task waits here until a session
// can send it; up to `maxBatch` go in one UpdateTaskStatus call, at most every `batchMs`. A status
// leaves the queue only when the manager acknowledged it (a newer status for the same task that
// arrived meanwhile stays). Offline, reports accumulate (one per task: bounded by the task count).
import type { Logger } from 'pino';

import type { TaskStatus } from '../../manager/store/types.js';

export type SendStatuses = (updates: readonly { readonly taskId: string; readonly status: TaskStatus }[]) => Promise<readonly { readonly taskId: string; readonly reason: string }[]>;

export interface StatusReporterOptions {
  readonly batchMs: number;
  readonly maxBatch: number;
  readonly logger: Logger;
}

export class StatusReporter {
  private readonly dirty = new Map<string, TaskStatus>();
  private send: SendStatuses | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private closed = false;

  constructor(private readonly opts: StatusReporterOptions) {}

  get pending(): number {
    return this.dirty.size;
  }

  report(taskId: string, status: TaskStatus): void {
    if (this.closed) return;
    this.dirty.set(taskId, status);
    this.schedule();
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
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.closed || this.send === null || this.sending || this.timer !== null || this.dirty.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.opts.batchMs);
  }

  private async flush(): Promise<void> {
    const send = this.send;
    if (send === null || this.sending || this.dirty.size === 0) return;
    this.sending = true;
    const batch = [...this.dirty].slice(0, this.opts.maxBatch).map(([taskId, status]) => ({ taskId, status }));
    try {
      const refused = await send(batch);
      for (const r of refused) this.opts.logger.warn({ taskId: r.taskId, reason: r.reason }, 'agent: the manager refused a task status');
      for (const u of batch) if (this.dirty.get(u.taskId) === u.status) this.dirty.delete(u.taskId);
    } catch (err) {
      // The session will end on its own if the manager is gone; the statuses stay queued for the next one.
      this.opts.logger.debug({ err }, 'agent: status report failed; kept for the next attempt');
    } finally {
      this.sending = false;
    }
    this.schedule();
  }
}
