// The orchestrators and how the manager runtime starts them (on the leader only: they write).
import type { Logger } from 'pino';
import type { MemoryStore } from '../store/memory-store.js';
import { CreationBurst } from './burst.js';
import { systemClock, type Clock } from './clock.js';
import { GlobalOrchestrator } from './global.js';
import type { TaskPlacer } from './placer.js';
import { ReplicatedOrchestrator } from './replicated.js';
import { RestartSupervisor } from './restart.js';
import { TaskReaper } from './task-reaper.js';
import { Updater } from './updater.js';
import { JobsOrchestrator } from './jobs.js';

export { ReplicatedOrchestrator, retire, stopTask, removeTask } from './replicated.js';
export { GlobalOrchestrator, nodeFit, constraintsOf } from './global.js';
export { RestartSupervisor, needsRestartDecision } from './restart.js';
export { TaskReaper, isFinished } from './task-reaper.js';
export { Updater } from './updater.js';
export { JobsOrchestrator, type JobService } from './jobs.js';
export { CreationBurst } from './burst.js';
export { ASSIGNED_MESSAGE, type Placed, type PlacementWant, type TaskPlacer } from './placer.js';
export { ReconcileLoop, MAX_WRITES_PER_TX, type LoopOptions } from './loop.js';
export { systemClock, ManualClock, type Clock, type TimerHandle } from './clock.js';
export * from './task-state.js';
export * from './service-model.js';

export interface OrchestratorsOptions {
  readonly store: MemoryStore;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Shared with the scheduler loop (`SchedulerLoopOptions.burst`); default a new one, see `burst`. */
  readonly burst?: CreationBurst;
  /** The scheduler's placer (manager/schedule `Placement`, shared with the scheduler loop): scale-ups are created placed. */
  readonly placer?: TaskPlacer;
}

/** Every orchestration loop, started and stopped together (the manager runs them while it leads). */
export class Orchestrators {
  readonly replicated: ReplicatedOrchestrator;
  readonly global: GlobalOrchestrator;
  readonly restarts: RestartSupervisor;
  readonly reaper: TaskReaper;
  readonly updater: Updater;
  readonly jobs: JobsOrchestrator;
  /** Held while the replicated orchestrator commits a scale-up: give it to the scheduler loop. */
  readonly burst: CreationBurst;

  constructor(opts: OrchestratorsOptions) {
    const o = { store: opts.store, logger: opts.logger, clock: opts.clock ?? systemClock };
    this.burst = opts.burst ?? new CreationBurst();
    this.replicated = new ReplicatedOrchestrator({ ...o, burst: this.burst, ...(opts.placer !== undefined ? { placer: opts.placer } : {}) });
    this.global = new GlobalOrchestrator(o);
    this.restarts = new RestartSupervisor(o);
    this.reaper = new TaskReaper(o);
    this.updater = new Updater(o);
    this.jobs = new JobsOrchestrator(o);
  }

  private get all(): { start(): void; stop(): Promise<void> }[] {
    return [this.restarts, this.replicated, this.global, this.jobs, this.updater, this.reaper];
  }

  start(): void {
    for (const l of this.all) l.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((l) => l.stop()));
  }
}
