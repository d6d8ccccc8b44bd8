// The batch writer under a burst larger than one batch: full batches commit side by side (their
// Raft round trips overlap), every report is written once and answered, a task reported again
// while its first report is committing is written after it (never refused as a conflict), and
// reports that trickle in still go out as one batch per window.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { MemoryStore } from '../store/memory-store.js';
import { StoreCluster } from '../store/testing/cluster.js';
import type { TaskState, TaskStatus } from '../store/types.js';
import { BatchWriter } from './batch-writer.js';

let cluster: StoreCluster;
let store: MemoryStore;
const NODE = 'node-batch-writer';

beforeAll(async () => {
  cluster = await StoreCluster.start({ size: 1 });
  store = (await cluster.waitLeader()).store;
}, 30_000);
afterAll(async () => {
  await cluster?.close();
});

function status(state: TaskState): TaskStatus {
  return { Timestamp: new Date().toISOString(), State: state, Message: state };
}

async function assignedTasks(n: number): Promise<string[]> {
  const { result } = await store.update((tx) =>
    Array.from(
      { length: n },
      () =>
        tx.create('task', {
          Spec: { ContainerSpec: { Image: 'busybox' } },
          ServiceID: '',
          Slot: 1,
          NodeID: NODE,
          DesiredState: 'running',
          Status: status('assigned'),
        }).ID,
    ),
  );
  return result;
}

function writer(maxBatchItems: number, maxInflightCommits: number): BatchWriter {
  return new BatchWriter({ store, logger: pino({ level: 'silent' }), maxBatchItems, maxBatchIntervalMs: 5, maxPendingItems: 10_000, maxInflightCommits });
}

describe('BatchWriter', () => {
  it('writes a burst of many batches, each report once, with commits in flight side by side', async () => {
    const ids = await assignedTasks(60);
    const w = writer(10, 3);
    const first = ids.map((id) => w.enqueueTaskStatus(NODE, id, status('running')));
    // Reported again while the first reports commit: written after them, not refused.
    const again = ids.slice(0, 15).map((id) => w.enqueueTaskStatus(NODE, id, status('complete')));
    expect(await Promise.all([...first, ...again])).toEqual(Array.from({ length: 75 }, () => null));
    for (const [i, id] of ids.entries()) expect(store.get('task', id)?.Status.State).toBe(i < 15 ? 'complete' : 'running');
    expect(w.stats.refused).toBe(0);
    expect(w.stats.items).toBe(75);
    expect(w.stats.commits).toBeGreaterThanOrEqual(8);
    w.close('done');
  });

  it('a backwards report is still refused, and reports within one window share one commit', async () => {
    const ids = await assignedTasks(5);
    const w = writer(10, 3);
    expect(await Promise.all(ids.map((id) => w.enqueueTaskStatus(NODE, id, status('running'))))).toEqual([null, null, null, null, null]);
    expect(w.stats.commits).toBe(1);
    expect(await w.enqueueTaskStatus(NODE, ids[0]!, status('starting'))).toMatch(/.+/);
    expect(store.get('task', ids[0]!)?.Status.State).toBe('running');
    w.close('done');
  });

  it("a request's items are answered once, together: what was refused and why, the rest written", async () => {
    const ids = await assignedTasks(4);
    const w = writer(10, 1);
    await w.enqueueTaskStatuses(NODE, [{ taskId: ids[0]!, status: status('running') }]);
    await store.update((tx) => tx.delete('task', ids[1]!));
    const refused = await w.enqueueTaskStatuses(NODE, [
      { taskId: ids[0]!, status: status('preparing') },
      { taskId: ids[1]!, status: status('running') },
      { taskId: ids[2]!, status: status('starting') },
      { taskId: ids[3]!, status: status('running') },
      { taskId: ids[3]!, status: status('starting') },
    ]);
    expect(refused.map((r) => r.taskId).sort()).toEqual([ids[0]!, ids[1]!].sort());
    expect(refused.find((r) => r.taskId === ids[1])?.reason).toBe(`task ${ids[1]!} no longer exists`);
    expect([ids[0], ids[2], ids[3]].map((id) => store.get('task', id!)?.Status.State)).toEqual(['running', 'starting', 'running']);
    expect(w.stats.commits).toBe(2);
    const pending = w.enqueueTaskStatuses(NODE, [{ taskId: ids[2]!, status: status('running') }]);
    w.close('stopping');
    await expect(pending).rejects.toThrow('stopping');
  });
});
