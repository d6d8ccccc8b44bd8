// The task state machine as the dispatcher enforces it on what workers report. Observed state
// only moves forward (manager/store/types.ts TASK_STATES is the order); a worker reports only the
// states a worker owns (ACCEPTED … REJECTED); once terminal, a task stays in its terminal state.
//
// LOCAL: manager/orchestrator/task-state.ts did not exist when this was written; when it lands,
// this module should defer to it (the rules must be one rule).
import { TASK_STATES, type TaskState } from '../store/types.js';

const RANK: ReadonlyMap<TaskState, number> = new Map(TASK_STATES.map((s, i) => [s, i]));

export function taskStateRank(state: TaskState): number {
  const r = RANK.get(state);
  if (r === undefined) throw new RangeError(`unknown task state ${String(state)}`);
  return r;
}

/** States a worker may report. NEW…ASSIGNED belong to orchestrators and the scheduler; REMOVE and ORPHANED to managers. */
export const WORKER_REPORTED_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  'accepted',
  'preparing',
  'ready',
  'starting',
  'running',
  'complete',
  'shutdown',
  'failed',
  'rejected',
]);

/** A task in one of these states never runs again. */
export function isTerminal(state: TaskState): boolean {
  return taskStateRank(state) > taskStateRank('running');
}

/**
 * Null when a worker may move a task from `from` to `to` (the same state is allowed: it refreshes
 * the message or container status), else the reason it may not, for the log and the response.
 */
export function workerTransitionRefusal(from: TaskState, to: TaskState): string | null {
  if (!WORKER_REPORTED_STATES.has(to)) return `state ${to} is set by managers, not reported by workers`;
  if (from === to) return null;
  if (isTerminal(from)) return `task is already ${from}; a finished task cannot become ${to}`;
  if (taskStateRank(to) < taskStateRank(from)) return `task state only moves forward: ${from} → ${to} goes back`;
  return null;
}
