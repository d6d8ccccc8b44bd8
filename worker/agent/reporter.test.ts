// What the manager hears from the status reporter: a task that passes ACCEPTED → RUNNING while a
// report waits is reported once with RUNNING (also when the whole chain takes longer than the hold
// but no step does); a task that stays in a step longer than the hold is reported in that step; a
// status the manager did not acknowledge is sent again.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type { TaskState, TaskStatus } from '../../manager/store/types.js';
import { StatusReporter } from './reporter.js';

const BATCH_MS = 50;
const HOLD_MS = 500;

type Sent = { readonly taskId: string; readonly state: TaskState }[];

function status(state: TaskState): TaskStatus {
  return { Timestamp: new Date().toISOString(), State: state, Message: state };
}

describe('StatusReporter', () => {
  let calls: Sent[];
  let fail: boolean;
  let reporter: StatusReporter;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    calls = [];
    fail = false;
    reporter = new StatusReporter({ batchMs: BATCH_MS, maxBatch: 500, transientHoldMs: HOLD_MS, logger: pino({ level: 'silent' }) });
    reporter.setSender(async (updates) => {
      if (fail) throw new Error('manager gone');
      calls.push(updates.map((u) => ({ taskId: u.taskId, state: u.status.State })));
      return [];
    });
  });

  afterEach(() => {
    reporter.close();
    vi.useRealTimers();
  });

  it('reports a task that starts at once in one item, with RUNNING', async () => {
    for (const s of ['accepted', 'preparing', 'ready', 'starting'] as const) reporter.report('t1', status(s));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([]);
    reporter.report('t1', status('running'));
    reporter.report('t2', status('accepted'));
    reporter.report('t2', status('failed'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([
      [
        { taskId: 't1', state: 'running' },
        { taskId: 't2', state: 'failed' },
      ],
    ]);
    expect(reporter.pending).toBe(0);
  });

  it('reports a task still preparing once the hold is over, and its next state after', async () => {
    reporter.report('t1', status('accepted'));
    reporter.report('t1', status('preparing'));
    await vi.advanceTimersByTimeAsync(HOLD_MS);
    expect(calls).toEqual([[{ taskId: 't1', state: 'preparing' }]]);
    reporter.report('t1', status('starting'));
    reporter.report('t1', status('running'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([[{ taskId: 't1', state: 'preparing' }], [{ taskId: 't1', state: 'running' }]]);
  });

  it('reports a task parked at READY (its desired state) once the hold is over', async () => {
    reporter.report('t1', status('accepted'));
    reporter.report('t1', status('preparing'));
    reporter.report('t1', status('ready'));
    await vi.advanceTimersByTimeAsync(HOLD_MS * 0.9);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(HOLD_MS * 0.2);
    expect(calls).toEqual([[{ taskId: 't1', state: 'ready' }]]);
  });

  it('holds each step from when the task entered it: a chain of quick steps longer than the hold is reported once', async () => {
    for (const s of ['accepted', 'preparing', 'ready', 'starting'] as const) {
      reporter.report('t1', status(s));
      await vi.advanceTimersByTimeAsync(HOLD_MS * 0.6);
    }
    expect(calls).toEqual([]);
    reporter.report('t1', status('running'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([[{ taskId: 't1', state: 'running' }]]);
  });

  it('the same step reported again does not extend its hold', async () => {
    for (let i = 0; i < 3; i++) {
      reporter.report('t1', status('preparing'));
      await vi.advanceTimersByTimeAsync(HOLD_MS * 0.4);
    }
    // 1.2 holds after the task entered PREPARING (0.4 after the last report of it): sent.
    expect(calls).toEqual([[{ taskId: 't1', state: 'preparing' }]]);
  });

  it('a settled status does not wait for another task held in a step', async () => {
    reporter.report('slow', status('preparing'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    reporter.report('fast', status('running'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([[{ taskId: 'fast', state: 'running' }]]);
    await vi.advanceTimersByTimeAsync(HOLD_MS);
    expect(calls).toEqual([[{ taskId: 'fast', state: 'running' }], [{ taskId: 'slow', state: 'preparing' }]]);
  });

  it('with no hold, every step that waits for a report is reported', async () => {
    reporter.close();
    reporter = new StatusReporter({ batchMs: BATCH_MS, maxBatch: 500, transientHoldMs: 0, logger: pino({ level: 'silent' }) });
    reporter.setSender(async (updates) => {
      calls.push(updates.map((u) => ({ taskId: u.taskId, state: u.status.State })));
      return [];
    });
    reporter.report('t1', status('preparing'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([[{ taskId: 't1', state: 'preparing' }]]);
  });

  it('keeps a status whose report failed and sends it with the next batch', async () => {
    fail = true;
    reporter.report('t1', status('running'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([]);
    expect(reporter.pending).toBe(1);
    fail = false;
    reporter.report('t2', status('running'));
    await vi.advanceTimersByTimeAsync(BATCH_MS);
    expect(calls).toEqual([
      [
        { taskId: 't1', state: 'running' },
        { taskId: 't2', state: 'running' },
      ],
    ]);
  });
});
