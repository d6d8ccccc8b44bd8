// Test tool: pretends to be the workers of some nodes, writing task status through the store as
// the dispatcher would on their behalf. It never ships as an executor; tests use it to drive the
// orchestrators through the states real workers report.
//
// Behaviour per task is chosen by `behave(task)`:
//   'run'        assigned → running, and shutdown when told to stop
//   'fail'       assigned → failed ("task: non-zero exit (1)")
//   'exit0'      assigned → running → complete (exit 0)
//   'hang'       stays assigned (never starts)
import { ResyncRequiredError } from '../../store/errors.js';
import type { MemoryStore } from '../../store/memory-store.js';
import type { Task } from '../../store/types.js';
import { canTransition, isTerminal, reachedNode } from '../task-state.js';

export type SimBehaviour = 'run' | 'fail' | 'exit0' | 'hang';

export interface SimWorkersOptions {
  readonly store: MemoryStore;
  /** Default: the image name decides: "*:bad" fails, "*:exit0" exits 0, "*:hang" hangs, anything else runs. */
  readonly behave?: (t: Task) => SimBehaviour;
}

function byImage(t: Task): SimBehaviour {
  const img = t.Spec.ContainerSpec?.Image ?? '';
  if (img.endsWith(':bad')) return 'fail';
  if (img.endsWith(':exit0')) return 'exit0';
  if (img.endsWith(':hang')) return 'hang';
  return 'run';
}

export class SimWorkers {
  /** Nodes whose "worker" is gone: their tasks get no more reports. */
  readonly dead = new Set<string>();
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly behave: (t: Task) => SimBehaviour;

  constructor(private readonly opts: SimWorkersOptions) {
    this.behave = opts.behave ?? byImage;
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    const store = this.opts.store;
    while (!this.stopped && !store.closed) {
      try {
        await this.step();
      } catch (err) {
        if (!(err instanceof ResyncRequiredError) && !(err instanceof Error && err.message === 'update out of sequence')) throw err;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** One round: every task on a live node advances one report. */
  private async step(): Promise<void> {
    const store = this.opts.store;
    const writes: Task[] = [];
    for (const t of store.find('task')) {
      if (t.NodeID === '' || this.dead.has(t.NodeID) || !reachedNode(t) || isTerminal(t.Status.State)) continue;
      const next = this.nextReport(t);
      if (next !== null && canTransition(t.Status.State, next.Status.State)) writes.push(next);
    }
    if (writes.length === 0) return;
    await store.update((tx) => {
      for (const w of writes.slice(0, 1000)) tx.update('task', w);
    });
  }

  private nextReport(t: Task): Task | null {
    const ts = new Date().toISOString();
    const to = (State: Task['Status']['State'], Message: string, extra: Partial<Task['Status']> = {}): Task => ({ ...t, Status: { ...t.Status, State, Message, Timestamp: ts, ...extra } });
    if (t.DesiredState === 'shutdown' || t.DesiredState === 'remove') return to('shutdown', 'shutdown');
    const b = this.behave(t);
    if (b === 'hang') return null;
    if (t.DesiredState === 'ready') return t.Status.State === 'ready' ? null : to('ready', 'prepared');
    if (b === 'fail') return to('failed', 'started', { Err: 'task: non-zero exit (1)', ContainerStatus: { ExitCode: 1 } });
    if (t.Status.State !== 'running') return to('running', 'started');
    if (b === 'exit0') return to('complete', 'finished', { ContainerStatus: { ExitCode: 0 } });
    return null;
  }
}
