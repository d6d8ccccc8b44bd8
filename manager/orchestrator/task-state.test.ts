// The task state machine shared by the orchestrators and the dispatcher.
import { describe, expect, it } from 'vitest';
import { TASK_STATES, type TaskState } from '../store/types.js';
import { canChangeDesired, canTransition, isTerminal, stateRank } from './task-state.js';

const ORDER: TaskState[] = ['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running'];
const ENDS: TaskState[] = ['complete', 'failed', 'shutdown', 'rejected', 'orphaned'];

describe('task state machine', () => {
  it('orders the lifecycle as swarm does', () => {
    for (let i = 1; i < ORDER.length; i++) expect(stateRank(ORDER[i]!)).toBeGreaterThan(stateRank(ORDER[i - 1]!));
    for (const e of ENDS) expect(stateRank(e)).toBeGreaterThan(stateRank('running'));
    expect([...TASK_STATES].sort((a, b) => stateRank(a) - stateRank(b))).toEqual([...TASK_STATES]);
  });

  it('moves only forward, may skip states, and never leaves an end state', () => {
    expect(canTransition('new', 'pending')).toBe(true);
    expect(canTransition('assigned', 'running')).toBe(true);
    expect(canTransition('preparing', 'failed')).toBe(true);
    expect(canTransition('pending', 'shutdown')).toBe(true);
    expect(canTransition('running', 'orphaned')).toBe(true);
    expect(canTransition('running', 'running')).toBe(false);
    expect(canTransition('running', 'starting')).toBe(false);
    expect(canTransition('assigned', 'pending')).toBe(false);
    for (const e of ENDS) {
      expect(isTerminal(e)).toBe(true);
      for (const to of TASK_STATES) expect(canTransition(e, to)).toBe(false);
    }
    for (const s of ORDER) expect(isTerminal(s)).toBe(false);
  });

  it('remove is a desired state only', () => {
    for (const s of ORDER) expect(canTransition(s, 'remove')).toBe(false);
    expect(canChangeDesired('running', 'shutdown')).toBe(true);
    expect(canChangeDesired('shutdown', 'remove')).toBe(true);
    expect(canChangeDesired('ready', 'running')).toBe(true);
    expect(canChangeDesired('shutdown', 'running')).toBe(false);
  });
});
