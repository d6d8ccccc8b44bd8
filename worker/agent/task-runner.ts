// One task on this node: drives its container through the executor's TaskController from the
// task's desired state and reports every observed state (swarmkit's agent/exec "Do" loop, ours):
//
//   ASSIGNED → ACCEPTED → PREPARING ─prepare()─► READY → STARTING ─start()─► RUNNING ─wait()─► COMPLETE | FAILED
//                             │ prepare fails: REJECTED        │ start fails: FAILED
//   desired state past RUNNING at any point: shutdown() if a process may exist → SHUTDOWN
//   task left the assignment set: shutdown if running, then remove() (container, mounts, bundle)
//
// Steps run one at a time (`kick` re-runs the driver after the current step); `wait()` runs
// beside them so that a shutdown can interrupt a running task. A restarted agent builds runners
// from its saved statuses: a RUNNING task re-attaches to its container (the executor adopts it),
// an interrupted PREPARING/STARTING step is repeated (the executor's calls are idempotent).
import type { Logger } from 'pino';

import type { Task, TaskState, TaskStatus } from '../../manager/store/types.js';
import { isTerminal, taskStateRank } from '../../manager/dispatcher/task-transitions.js';
import type { ContainerState, DependencyGetter, ExitStatus, Executor, TaskController, TaskDescriptor } from '../executor/types.js';
import type { TaskNetworkConfig, TaskNetworks } from '../network/worker-networks.js';

export interface TaskRunnerDeps {
  readonly executor: Executor;
  readonly dependencies: DependencyGetter;
  /** Called with every new observed status (the agent persists and reports it). */
  readonly report: (taskId: string, status: TaskStatus) => void;
  readonly logger: Logger;
  /** Overlay networks (worker/network): the task's netns and resolv.conf are made before prepare. */
  readonly network?: TaskNetworks;
}

const RUNNING = taskStateRank('running');

/** The current time as an ISO string; tasks changing state in the same millisecond share one. */
let isoMs = -1;
let iso = '';
function nowIso(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    iso = new Date(ms).toISOString();
  }
  return iso;
}

/** A status being built (the store's type is read-only). */
type NewStatus = { -readonly [K in keyof TaskStatus]: TaskStatus[K] };

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class TaskRunner {
  private controller: TaskController | null = null;
  private driving = false;
  private again = false;
  private closed = false;
  private removed = false;
  private waiting = false;
  private stopping = false;
  private prepareAbort: AbortController | null = null;
  /** The container's state as `start()` saw it right after starting it (attachWait needs no second look). */
  private startedState: ContainerState | null = null;
  private net: TaskNetworkConfig | undefined;
  private netReleased = false;

  constructor(
    private task: Task,
    private observed: TaskStatus,
    private readonly deps: TaskRunnerDeps,
  ) {}

  get taskId(): string {
    return this.task.ID;
  }

  get status(): TaskStatus {
    return this.observed;
  }

  /** A newer version of the task from the manager (desired state, spec). */
  update(task: Task): void {
    this.task = task;
    if (this.wantsStop()) this.prepareAbort?.abort();
    this.kick();
  }

  /** Starts (or resumes) driving the task. */
  kick(): void {
    if (this.closed || this.removed) return;
    if (this.driving) {
      this.again = true;
      return;
    }
    this.driving = true;
    void (async () => {
      try {
        do {
          this.again = false;
          await this.step();
        } while (this.again && !this.closed && !this.removed);
      } catch (err) {
        this.deps.logger.error({ err, taskId: this.taskId }, 'agent: task driver failed');
      } finally {
        this.driving = false;
      }
    })();
  }

  /** The task left the assignment set: stop it if it runs and remove its container. */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    this.prepareAbort?.abort();
    const ctl = this.ctl();
    try {
      if (ctl.inspect().state === 'running') await ctl.shutdown();
      await ctl.remove();
    } catch (err) {
      this.deps.logger.warn({ err, taskId: this.taskId }, 'agent: removing a task container failed');
    }
    this.releaseNetwork();
  }

  /**
   * Re-attaches a task that was already past PREPARING when this agent started (its namespace
   * survived; the network sandboxes were rebuilt). Idempotent.
   */
  restoreNetwork(): void {
    const rank = taskStateRank(this.observed.State);
    if (this.deps.network === undefined || isTerminal(this.observed.State) || rank < taskStateRank('ready')) return;
    this.deps.network.prepareTask(this.task).then(
      (net) => {
        this.net = net;
      },
      (err: unknown) => this.deps.logger.warn({ err, taskId: this.taskId }, 'agent: re-attaching a task to its networks failed'),
    );
  }

  private releaseNetwork(): void {
    if (this.deps.network === undefined || this.netReleased) return;
    this.netReleased = true;
    this.deps.network.releaseTask(this.taskId).catch((err: unknown) => this.deps.logger.warn({ err, taskId: this.taskId }, 'agent: detaching a task from its networks failed'));
  }

  /** The agent is closing: stop driving; the container keeps running (a new agent adopts it). */
  close(): void {
    this.closed = true;
  }

  private wantsStop(): boolean {
    return taskStateRank(this.task.DesiredState) > RUNNING;
  }

  private ctl(): TaskController {
    if (this.controller === null) {
      // Field by field, the optional ones only when set (no spread of temporary objects).
      const descriptor: { -readonly [K in keyof TaskDescriptor]: TaskDescriptor[K] } = { taskId: this.task.ID, spec: this.task.Spec, dependencies: this.deps.dependencies };
      if (this.task.ServiceID !== '') descriptor.serviceId = this.task.ServiceID;
      if (this.net !== undefined) {
        descriptor.networkNamespacePath = this.net.networkNamespacePath;
        if (this.net.resolvConf !== undefined) descriptor.resolvConf = this.net.resolvConf;
      }
      this.controller = this.deps.executor.controller(descriptor);
    }
    return this.controller;
  }

  /**
   * Records and reports a new observed status. Statuses are built field by field in one order
   * (Timestamp, State, Message, Err, ContainerStatus, PortStatus): no spread of optional parts.
   */
  private set(state: TaskState, message: string, err?: string): void {
    if (this.closed || this.removed) return;
    const s: NewStatus = { Timestamp: nowIso(), State: state, Message: message };
    if (err !== undefined) s.Err = err;
    this.publish(s);
  }

  private publish(s: TaskStatus): void {
    if (this.closed || this.removed) return;
    this.observed = s;
    this.deps.report(this.taskId, s);
    // A finished task's addresses go back to the allocator: its endpoints must not hold them.
    if (isTerminal(s.State)) this.releaseNetwork();
  }

  /** Advances as far as it can now; bounded: every pass moves the state forward or returns. */
  private async step(): Promise<void> {
    for (let pass = 0; pass < 16 && !this.closed && !this.removed; pass++) {
      const state = this.observed.State;
      if (isTerminal(state)) return;
      if (this.wantsStop()) {
        await this.stop();
        return;
      }
      switch (state) {
        case 'new':
        case 'allocated':
        case 'pending':
        case 'assigned':
          this.set('accepted', 'accepted');
          break;
        case 'accepted':
        case 'preparing':
          if (!(await this.prepare())) return;
          break;
        case 'ready':
          if (this.task.DesiredState === 'ready') return; // start-first updates hold tasks here
          this.set('starting', 'starting');
          break;
        case 'starting':
          if (!(await this.start())) return;
          break;
        case 'running':
          this.attachWait();
          return;
        default:
          return;
      }
    }
  }

  private async prepare(): Promise<boolean> {
    this.set('preparing', 'preparing');
    const abort = new AbortController();
    this.prepareAbort = abort;
    try {
      if (this.deps.network !== undefined && this.net === undefined) {
        // Veths in place before the container exists: the executor is handed the namespace.
        this.net = await this.deps.network.prepareTask(this.task);
        if (this.net !== undefined) this.controller = null; // the executor takes the new descriptor
      }
      await this.ctl().prepare(abort.signal);
    } catch (err) {
      if (this.closed || this.removed) return false;
      if (this.wantsStop()) return true; // the next pass shuts it down
      this.set('rejected', 'preparing failed', errorMessage(err));
      return false;
    } finally {
      this.prepareAbort = null;
    }
    this.set('ready', 'prepared');
    return true;
  }

  private async start(): Promise<boolean> {
    const ctl = this.ctl();
    try {
      await ctl.start();
    } catch (err) {
      if (this.closed || this.removed) return false;
      this.set('failed', 'starting failed', errorMessage(err));
      return false;
    }
    if (this.closed || this.removed) return false;
    const seen = ctl.inspect();
    this.startedState = seen.state;
    const s: NewStatus = { Timestamp: nowIso(), State: 'running', Message: 'started' };
    s.ContainerStatus = seen.pid !== undefined ? { ContainerID: this.taskId, PID: seen.pid } : { ContainerID: this.taskId };
    if (this.net?.ports !== undefined) s.PortStatus = { Ports: this.net.ports };
    this.publish(s);
    return true;
  }

  private attachWait(): void {
    if (this.waiting) return;
    const ctl = this.ctl();
    // Just started by this runner: start() looked already. Resumed: look now.
    const seen = this.startedState ?? ctl.inspect().state;
    this.startedState = null;
    if (seen === 'absent' || seen === 'removed') {
      // Saved as RUNNING, but the executor has no container: lost while the agent was away.
      this.set('failed', 'started', 'the task\'s container is gone (lost while the agent was not running)');
      return;
    }
    this.waiting = true;
    ctl.wait().then(
      (exit) => this.exited(exit),
      (err: unknown) => {
        this.waiting = false;
        if (this.closed || this.removed || this.stopping) return;
        this.set('failed', 'started', `waiting for the container failed: ${errorMessage(err)}`);
      },
    );
  }

  private exited(exit: ExitStatus): void {
    this.waiting = false;
    if (this.closed || this.removed || this.stopping || this.observed.State !== 'running') return;
    const s: NewStatus = exit.state === 'complete' ? { Timestamp: nowIso(), State: 'complete', Message: 'finished' } : { Timestamp: nowIso(), State: 'failed', Message: 'started', Err: exit.message };
    s.ContainerStatus = exit.exitCode !== undefined ? { ContainerID: this.taskId, ExitCode: exit.exitCode } : { ContainerID: this.taskId };
    this.publish(s);
    // An unhealthy container is still running: stop it (as Docker does), so that its replacement
    // does not run beside it.
    if (exit.unhealthy) {
      const ctl = this.ctl();
      ctl
        .shutdown()
        .catch(() => ctl.terminate())
        .catch((err: unknown) => this.deps.logger.error({ err, taskId: this.taskId }, 'agent: stopping an unhealthy container failed'));
    }
  }

  private async stop(): Promise<void> {
    const state = this.observed.State;
    // A process can exist from STARTING on (start() may have run before a crash).
    if (taskStateRank(state) >= taskStateRank('starting')) {
      this.stopping = true;
      try {
        await this.ctl().shutdown();
      } catch (err) {
        this.deps.logger.warn({ err, taskId: this.taskId }, 'agent: shutdown failed; killing the task');
        await this.ctl()
          .terminate()
          .catch((e: unknown) => this.deps.logger.error({ err: e, taskId: this.taskId }, 'agent: terminate failed'));
      }
    }
    this.set('shutdown', 'shutdown');
  }
}
