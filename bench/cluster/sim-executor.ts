// LOAD TOOL ONLY — never wired into the product: an Executor that pretends to run tasks, so that
// bench:cluster measures the control plane (scheduler, dispatcher, agent, Raft) and not runc.
// prepare/start succeed on the next macrotask; a "running" task stays so until the agent shuts it
// down or removes it. One SimExecutor serves one simulated node; `counters` may be shared by all
// the nodes of one worker process so that the process can report how many tasks its nodes run.
import type {
  ContainerState,
  ExitStatus,
  Executor,
  ReconcileResult,
  TaskController,
  TaskDescriptor,
  TaskEvent,
  TaskInspect,
} from '../../worker/executor/types.js';

/** What the simulated nodes of one process did, for the bench's progress and sanity checks. */
export interface SimCounters {
  prepared: number;
  started: number;
  stopped: number;
  removed: number;
}

export function newSimCounters(): SimCounters {
  return { prepared: 0, started: 0, stopped: 0, removed: 0 };
}

const NO_HEALTH = { status: 'none' as const, failingStreak: 0, log: [] };

function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

class SimController implements TaskController {
  private state: ContainerState = 'absent';
  private pid: number | undefined;
  private startedAtMs: number | undefined;
  private exit: ExitStatus | undefined;
  private waiters: ((s: ExitStatus) => void)[] = [];
  private readonly listeners = new Set<(e: TaskEvent) => void>();

  constructor(
    readonly taskId: string,
    private readonly owner: SimExecutor,
  ) {}

  get current(): ContainerState {
    return this.state;
  }

  async prepare(signal?: AbortSignal): Promise<void> {
    if (this.state !== 'absent') return;
    await nextMacrotask();
    if (signal?.aborted === true) throw new Error(`task ${this.taskId}: prepare aborted`);
    if (this.state !== 'absent') return;
    this.state = 'prepared';
    this.owner.counters.prepared++;
  }

  async start(): Promise<void> {
    if (this.state === 'running') return;
    if (this.state !== 'prepared') throw new Error(`task ${this.taskId}: start in state ${this.state}`);
    await nextMacrotask();
    if (this.state !== 'prepared') throw new Error(`task ${this.taskId}: start in state ${this.state}`);
    this.state = 'running';
    this.pid = this.owner.nextPid();
    this.startedAtMs = Date.now();
    this.owner.counters.started++;
    for (const l of this.listeners) l({ type: 'started', taskId: this.taskId, pid: this.pid });
  }

  wait(): Promise<ExitStatus> {
    if (this.exit !== undefined) return Promise.resolve(this.exit);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async shutdown(): Promise<void> {
    this.finish(143);
  }

  async terminate(): Promise<void> {
    this.finish(137);
  }

  async remove(): Promise<void> {
    this.finish(137);
    if (this.state !== 'removed') this.owner.counters.removed++;
    this.state = 'removed';
    this.owner.forget(this.taskId);
  }

  inspect(): TaskInspect {
    return {
      taskId: this.taskId,
      state: this.state,
      pid: this.state === 'running' ? this.pid : undefined,
      exitCode: this.exit?.exitCode,
      oomKilled: false,
      health: NO_HEALTH,
      startedAtMs: this.startedAtMs,
      finishedAtMs: this.exit?.finishedAtMs,
      imageId: undefined,
      logPath: undefined,
      adopted: false,
    };
  }

  onEvent(listener: (event: TaskEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private finish(code: number): void {
    if (this.state !== 'running') return;
    this.state = 'exited';
    this.owner.counters.stopped++;
    this.exit = { state: 'failed', exitCode: code, oomKilled: false, unhealthy: false, message: `task: non-zero exit (${code})`, finishedAtMs: Date.now() };
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w(this.exit);
    for (const l of this.listeners) l({ type: 'exited', taskId: this.taskId, status: this.exit });
  }
}

/** One simulated node's executor. */
export class SimExecutor implements Executor {
  private readonly controllers = new Map<string, SimController>();
  private pids = 1000;

  constructor(readonly counters: SimCounters = newSimCounters()) {}

  nextPid(): number {
    return this.pids++;
  }

  forget(taskId: string): void {
    this.controllers.delete(taskId);
  }

  controller(task: TaskDescriptor): TaskController {
    let c = this.controllers.get(task.taskId);
    if (c === undefined) {
      c = new SimController(task.taskId, this);
      this.controllers.set(task.taskId, c);
    }
    return c;
  }

  taskIds(): readonly string[] {
    return [...this.controllers.values()].filter((c) => c.current !== 'absent' && c.current !== 'removed').map((c) => c.taskId);
  }

  /** Task IDs whose pretend process runs now. */
  running(): string[] {
    return [...this.controllers.values()].filter((c) => c.current === 'running').map((c) => c.taskId);
  }

  async reconcile(wantedTaskIds: Iterable<string>): Promise<ReconcileResult> {
    const wanted = new Set(wantedTaskIds);
    const kept: string[] = [];
    const removed: string[] = [];
    for (const id of this.taskIds()) {
      if (wanted.has(id)) kept.push(id);
      else {
        await this.controllers.get(id)?.remove();
        removed.push(id);
      }
    }
    return { kept, removed };
  }

  async close(): Promise<void> {}
}
