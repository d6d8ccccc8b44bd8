// The task state machine every manager component and the dispatcher share.
//
// A task is one-shot. Its *observed* state (`Status.State`, written by the allocator, the
// scheduler and — through the dispatcher — the worker) only moves forward along
//
//   NEW → (ALLOCATED) → PENDING → ASSIGNED → ACCEPTED → PREPARING → READY → STARTING → RUNNING
//       → COMPLETE | SHUTDOWN | FAILED | REJECTED | ORPHANED
//
// and may skip states (a task can fail while PREPARING, be shut down while PENDING). The five
// end states are terminal: nothing follows them. `REMOVE` is never observed; it is a *desired*
// state (set by orchestrators when a task's slot is gone and the task may be deleted once stopped).
//
// The *desired* state (`DesiredState`, written only by orchestrators) also only moves forward:
// READY (prepare, do not start yet) → RUNNING → COMPLETE (jobs) → SHUTDOWN → REMOVE.
import type { Task, TaskState } from '../store/types.js';

const RANK: Readonly<Record<TaskState, number>> = {
  new: 0,
  allocated: 1,
  pending: 2,
  assigned: 3,
  accepted: 4,
  preparing: 5,
  ready: 6,
  starting: 7,
  running: 8,
  complete: 9,
  shutdown: 10,
  failed: 11,
  rejected: 12,
  remove: 13,
  orphaned: 14,
};

/** Observed end states: a task in one of them never changes state again. */
const TERMINAL: ReadonlySet<TaskState> = new Set<TaskState>(['complete', 'shutdown', 'failed', 'rejected', 'orphaned', 'remove']);

/** The position of a state in the lifecycle (swarmkit numbers them 0, 64, 192…; only the order matters). */
export function stateRank(s: TaskState): number {
  return RANK[s];
}

export function isTerminal(s: TaskState): boolean {
  return TERMINAL.has(s);
}

/**
 * May an observed state move from `from` to `to`? Only forward, never out of a terminal state,
 * never to REMOVE (a desired state only). Staying in the same state is not a transition (false):
 * callers treat an identical report as a no-op before asking.
 */
export function canTransition(from: TaskState, to: TaskState): boolean {
  if (isTerminal(from) || to === 'remove') return false;
  return RANK[to] > RANK[from];
}

/** May an orchestrator change a desired state from `from` to `to`? Forward only. */
export function canChangeDesired(from: TaskState, to: TaskState): boolean {
  return RANK[to] > RANK[from];
}

/** States at or past this one mean the task holds no resources on its node any more. */
export function holdsResources(t: Pick<Task, 'NodeID' | 'Status'>): boolean {
  return t.NodeID !== '' && !isTerminal(t.Status.State) && RANK[t.Status.State] >= RANK.assigned;
}

/** The manager still wants this task to run (or to prepare and wait): desired state at most RUNNING. */
export function isRunnable(t: Pick<Task, 'DesiredState'>): boolean {
  return RANK[t.DesiredState] <= RANK.running;
}

/** Job tasks are wanted until they complete: desired state at most COMPLETE. */
export function isWantedJobTask(t: Pick<Task, 'DesiredState'>): boolean {
  return RANK[t.DesiredState] <= RANK.complete;
}

/** Observed state not yet past RUNNING: the task may still be (or become) alive on its node. */
export function isAlive(t: Pick<Task, 'Status'>): boolean {
  return RANK[t.Status.State] <= RANK.running;
}

/** Was the task ever given to a node (observed ASSIGNED or later, i.e. a worker may know it)? */
export function reachedNode(t: Pick<Task, 'Status' | 'NodeID'>): boolean {
  return t.NodeID !== '' && RANK[t.Status.State] >= RANK.assigned;
}

/** Did the task end by itself (its process exited or was refused), rather than being stopped by the manager? */
export function endedOnItsOwn(s: TaskState): boolean {
  return s === 'complete' || s === 'failed' || s === 'rejected';
}
