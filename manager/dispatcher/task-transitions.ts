// The task state machine as the dispatcher enforces it on what workers report, on top of the rule
// every manager component shares (manager/orchestrator/task-state.ts: observed state only moves
// forward, nothing leaves a terminal state). Added here: a worker reports only the states a worker
// owns (ACCEPTED … REJECTED), and re-reporting the current state is allowed (it refreshes the
// message or container status). The reasons are what the log and UpdateTaskStatusResponse say.
import { canTransition, isTerminal, stateRank } from '../orchestrator/task-state.js';
import type { TaskState } from '../store/types.js';

export { isTerminal };

export function taskStateRank(state: TaskState): number {
  return stateRank(state);
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

/**
 * Null when a worker may move a task from `from` to `to` (the same state is allowed: it refreshes
 * the message or container status), else the reason it may not, for the log and the response.
 */
export function workerTransitionRefusal(from: TaskState, to: TaskState): string | null {
  if (!WORKER_REPORTED_STATES.has(to)) return `state ${to} is set by managers, not reported by workers`;
  if (from === to) return null;
  if (isTerminal(from)) return `task is already ${from}; a finished task cannot become ${to}`;
  if (!canTransition(from, to)) return `task state only moves forward: ${from} → ${to} goes back`;
  return null;
}
