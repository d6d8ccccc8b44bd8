// FOR TESTS ONLY: an in-process Executor that pretends to run tasks. Nothing that ships may use it
// (the daemon wires the runc executor). Its "containers" live in this object, so a test that
// closes an agent and starts a new one on the same FakeExecutor sees them survive, as runc
// containers survive an agent restart. Tests decide how each task ends: `exit(taskId, code)`, or a
// per-task plan given up front (`plan`), and can make prepare or start fail.
import type {
  ExitStatus,
  Executor,
  ReconcileResult,
  TaskController,
  TaskDescriptor,
  TaskEvent,
  TaskInspect,
  ContainerState,
} from '../../executor/types.js';

export interface FakeTaskPlan {
  /** Exit with this code right after start (else the task runs until exit() or shutdown). */
  readonly exitCodeAfterStart?: number;
  /** prepare() rejects with this message (the agent reports REJECTED). */
  readonly failPrepare?: string;
  /** start() rejects with this message (the agent reports FAILED). */
  readonly failStart?: string;
}

/** How many times each lifecycle call ran, per task: how tests see "not restarted". */
export interface FakeCallCounts {
  prepare: number;
  start: number;
  shutdown: number;
  terminate: number;
  remove: number;
}

class FakeTaskController implements TaskController {
  state: ContainerState = 'absent';
  pid: number | undefined;
  exit: ExitStatus | undefined;
  startedAtMs: number | undefined;
  readonly calls: FakeCallCounts = { prepare: 0, start: 0, shutdown: 0, terminate: 0, remove: 0 };
  private waiters: ((s: ExitStatus) => void)[] = [];
  private readonly listeners = new Set<(e: TaskEvent) => void>();

  constructor(
    readonly taskId: string,
    readonly descriptor: TaskDescriptor,
    private readonly owner: FakeExecutor,
  ) {}

  async prepare(signal?: AbortSignal): Promise<void> {
    this.calls.prepare++;
    if (this.state === 'removed') throw new Error(`task ${this.taskId}: prepare after remove`);
    if (this.state !== 'absent') return;
    await this.owner.delay();
    if (signal?.aborted === true) throw new Error(`task ${this.taskId}: prepare aborted`);
    const failure = this.owner.planOf(this.taskId).failPrepare;
    if (failure !== undefined) throw new Error(`task ${this.taskId}: ${failure}`);
    this.state = 'prepared';
  }

  async start(): Promise<void> {
    this.calls.start++;
    if (this.state === 'running') return;
    if (this.state !== 'prepared') throw new Error(`task ${this.taskId}: start in state ${this.state}`);
    await this.owner.delay();
    const plan = this.owner.planOf(this.taskId);
    if (plan.failStart !== undefined) throw new Error(`task ${this.taskId}: ${plan.failStart}`);
    this.state = 'running';
    this.pid = this.owner.nextPid++;
    this.startedAtMs = Date.now();
    this.emit({ type: 'started', taskId: this.taskId, pid: this.pid });
    if (plan.exitCodeAfterStart !== undefined) {
      const code = plan.exitCodeAfterStart;
      setImmediate(() => this.finish(code));
    }
  }

  wait(): Promise<ExitStatus> {
    if (this.exit !== undefined) return Promise.resolve(this.exit);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async shutdown(): Promise<void> {
    this.calls.shutdown++;
    if (this.state === 'running') this.finish(143);
  }

  async terminate(): Promise<void> {
    this.calls.terminate++;
    if (this.state === 'running') this.finish(137);
  }

  async remove(): Promise<void> {
    this.calls.remove++;
    if (this.state === 'running') this.finish(137);
    this.state = 'removed';
  }

  inspect(): TaskInspect {
    return {
      taskId: this.taskId,
      state: this.state,
      pid: this.state === 'running' ? this.pid : undefined,
      exitCode: this.exit?.exitCode,
      oomKilled: false,
      health: { status: 'none', failingStreak: 0, log: [] },
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

  /** Ends the running "process" with `code`. */
  finish(code: number): void {
    if (this.state !== 'running') return;
    this.state = 'exited';
    this.exit = {
      state: code === 0 ? 'complete' : 'failed',
      exitCode: code,
      oomKilled: false,
      unhealthy: false,
      message: code === 0 ? '' : `task: non-zero exit (${code})`,
      finishedAtMs: Date.now(),
    };
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w(this.exit);
    this.emit({ type: 'exited', taskId: this.taskId, status: this.exit });
  }

  private emit(e: TaskEvent): void {
    for (const l of this.listeners) l(e);
  }
}

export class FakeExecutor implements Executor {
  nextPid = 1000;
  private readonly controllers = new Map<string, FakeTaskController>();
  private readonly plans = new Map<string, FakeTaskPlan>();

  /** Each prepare/start waits this long (0: a macrotask), so that intermediate states are observable. */
  constructor(private readonly stepDelayMs = 0) {}

  delay(): Promise<void> {
    return new Promise((r) => setTimeout(r, this.stepDelayMs));
  }

  /** How the task with this ID will behave (set before the agent sees it). */
  plan(taskId: string, plan: FakeTaskPlan): void {
    this.plans.set(taskId, plan);
  }

  planOf(taskId: string): FakeTaskPlan {
    return this.plans.get(taskId) ?? {};
  }

  controller(task: TaskDescriptor): TaskController {
    let c = this.controllers.get(task.taskId);
    if (c === undefined) {
      c = new FakeTaskController(task.taskId, task, this);
      this.controllers.set(task.taskId, c);
    }
    return c;
  }

  taskIds(): readonly string[] {
    return [...this.controllers.values()].filter((c) => c.state !== 'removed' && c.state !== 'absent').map((c) => c.taskId);
  }

  async reconcile(wantedTaskIds: Iterable<string>): Promise<ReconcileResult> {
    const wanted = new Set(wantedTaskIds);
    const kept: string[] = [];
    const removed: string[] = [];
    for (const id of this.taskIds()) {
      if (wanted.has(id)) kept.push(id);
      else {
        await this.controllers.get(id)!.remove();
        removed.push(id);
      }
    }
    return { kept, removed };
  }

  async close(): Promise<void> {}

  // ------------------------------------------------------------------- what tests look at

  /** Makes a running task exit with `code`. */
  exit(taskId: string, code: number): void {
    const c = this.controllers.get(taskId);
    if (c === undefined) throw new Error(`fake executor: no task ${taskId}`);
    c.finish(code);
  }

  stateOf(taskId: string): ContainerState {
    return this.controllers.get(taskId)?.state ?? 'absent';
  }

  callsOf(taskId: string): FakeCallCounts {
    return { ...(this.controllers.get(taskId)?.calls ?? { prepare: 0, start: 0, shutdown: 0, terminate: 0, remove: 0 }) };
  }

  /** Task IDs whose fake process runs now. */
  running(): string[] {
    return [...this.controllers.values()].filter((c) => c.state === 'running').map((c) => c.taskId);
  }

  descriptorOf(taskId: string): TaskDescriptor | undefined {
    return this.controllers.get(taskId)?.descriptor;
  }
}
