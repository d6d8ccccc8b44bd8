// AgentDb merges writes queued behind an in-flight one: what a reopened database holds must be
// exactly what writing every batch in order would have left.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { Task, TaskStatus } from '../../manager/store/types.js';
import { AgentDb } from './agent-db.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-agent-db-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const status = (state: TaskStatus['State']): TaskStatus => ({ Timestamp: '2026-01-01T00:00:00.000Z', State: state, Message: state });
const task = (id: string): Task => ({ ID: id, Spec: {}, Status: status('assigned') }) as unknown as Task;

describe('AgentDb merged writes', () => {
  it('keeps the last write of every key across a burst, puts after deletes included', async () => {
    const db = await AgentDb.open(dir);
    try {
      db.write([db.putTask(task('t1')), db.putStatus('t1', status('accepted'))]);
      for (const s of ['preparing', 'ready', 'starting', 'running'] as const) db.write([db.putStatus('t1', status(s))]);
      db.write([db.putTask(task('t2')), db.putStatus('t2', status('running'))]);
      db.write(db.delTask('t2'));
      db.write([db.putTask(task('t3'))]);
      db.write(db.delTask('t3'));
      db.write([db.putTask(task('t3')), db.putStatus('t3', status('accepted'))]);
      db.write([db.putManagers(['127.0.0.1:1', '127.0.0.1:2'])]);
      await db.flush();
    } finally {
      await db.close();
    }
    const again = await AgentDb.open(dir);
    try {
      const state = await again.load();
      expect([...state.tasks.keys()].sort()).toEqual(['t1', 't3']);
      expect(state.statuses.get('t1')?.State).toBe('running');
      expect(state.statuses.has('t2')).toBe(false);
      expect(state.statuses.get('t3')?.State).toBe('accepted');
      expect(state.managers).toEqual(['127.0.0.1:1', '127.0.0.1:2']);
    } finally {
      await again.close();
    }
  });

  it('keeps the last status of every task whichever way it was written (by task ID or by key), deletes included', async () => {
    const db = await AgentDb.open(dir);
    try {
      // t1: statuses by task ID, the last wins.
      db.write([db.putTask(task('t1'))]);
      for (const s of ['accepted', 'preparing', 'ready', 'starting', 'running'] as const) db.writeStatus('t1', status(s));
      // t2: a status by task ID, then the task deleted in the same burst.
      db.write([db.putTask(task('t2'))]);
      db.writeStatus('t2', status('running'));
      db.write(db.delTask('t2'));
      // t3: deleted, then assigned again and a new status by task ID: the new one stays.
      db.write([db.putTask(task('t3'))]);
      db.writeStatus('t3', status('running'));
      db.write(db.delTask('t3'));
      db.write([db.putTask(task('t3'))]);
      db.writeStatus('t3', status('accepted'));
      // t4: by task ID, then by key: the op by key is the later one.
      db.write([db.putTask(task('t4'))]);
      db.writeStatus('t4', status('starting'));
      db.write([db.putStatus('t4', status('failed'))]);
      await db.flush();
      // A later burst: only t1's status changes.
      db.writeStatus('t1', status('complete'));
      await db.flush();
    } finally {
      await db.close();
    }
    const again = await AgentDb.open(dir);
    try {
      const state = await again.load();
      expect([...state.tasks.keys()].sort()).toEqual(['t1', 't3', 't4']);
      expect(state.statuses.get('t1')?.State).toBe('complete');
      expect(state.statuses.has('t2')).toBe(false);
      expect(state.statuses.get('t3')?.State).toBe('accepted');
      expect(state.statuses.get('t4')?.State).toBe('failed');
      expect(state.statuses.size).toBe(3);
    } finally {
      await again.close();
    }
  });

  it('saves a task given with the JSON it came in as that JSON, read back as the task', async () => {
    const t = { ...task('t9'), Labels: { zone: 'ä' } } as Task;
    const json = Buffer.from(JSON.stringify(t), 'utf8');
    const db = await AgentDb.open(dir);
    try {
      db.write([db.putTask(t, json.subarray(0))]);
      await db.flush();
    } finally {
      await db.close();
    }
    const again = await AgentDb.open(dir);
    try {
      expect((await again.load()).tasks.get('t9')).toEqual(t);
    } finally {
      await again.close();
    }
  });
});
