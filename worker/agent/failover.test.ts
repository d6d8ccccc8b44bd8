// Manager failover: a StoreCluster of 3 managers, dispatchers on two of them. The agent starts
// with only the follower's address (it is redirected to the leader), runs tasks, and when the
// leader dies it moves to the other dispatcher — without restarting any task.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { DispatchCluster, waitFor } from '../../manager/dispatcher/testing/harness.js';
import { newId } from '../../manager/store/ids.js';
import type { MemoryStore } from '../../manager/store/memory-store.js';
import { Agent } from './agent.js';
import { FakeExecutor } from './testing/fake-executor.js';

let cluster: DispatchCluster;
let dataRoot = '';
let agent: Agent | null = null;

beforeAll(async () => {
  cluster = await DispatchCluster.start({
    size: 3,
    dispatchersOn: [1, 2],
    config: { heartbeatPeriodMs: 200, heartbeatJitterMs: 20, maxBatchIntervalMs: 10, leadershipCheckMs: 20 },
  });
  dataRoot = await mkdtemp(path.join(os.tmpdir(), 'shoal-agent-failover-'));
});

afterAll(async () => {
  await agent?.close();
  await cluster?.close();
  if (dataRoot !== '') await rm(dataRoot, { recursive: true, force: true });
});

/** Makes `memberId` the leader (transferring leadership if another member leads). */
async function lead(memberId: number): Promise<MemoryStore> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const leader = await cluster.leaderId();
    if (leader === memberId) break;
    cluster.stores.rs(leader).node.transferLeader(memberId);
    await waitFor(`member ${memberId} to lead`, () => cluster.stores.member(memberId).rs?.isLeader === true, 3000).catch(() => undefined);
  }
  await waitFor(`member ${memberId}'s dispatcher to serve`, () => cluster.manager(memberId).dispatcher?.leading === true);
  return cluster.stores.rs(memberId).store;
}

async function assign(store: MemoryStore, nodeId: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => newId());
  await store.update((tx) => {
    for (const ID of ids) {
      tx.create('task', {
        ID,
        Spec: { ContainerSpec: { Image: 'busybox' } },
        ServiceID: 'svc',
        Slot: 1,
        NodeID: nodeId,
        Status: { Timestamp: new Date().toISOString(), State: 'assigned', Message: '' },
        DesiredState: 'running',
      });
    }
  });
  return ids;
}

it('the agent fails over to another manager when its manager dies, and no task restarts', async () => {
  const store1 = await lead(1);
  const identity = await cluster.workerIdentity();
  const executor = new FakeExecutor(1);
  agent = await Agent.start({
    dataRoot,
    identity,
    // Only the follower: its dispatcher redirects the agent to the leader.
    managers: [cluster.manager(2).addr],
    executor,
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    statusBatchMs: 10,
  });
  await waitFor('a session with the leader', () => agent!.manager === cluster.manager(1).addr);
  expect(agent.knownManagers).toEqual(expect.arrayContaining([cluster.manager(1).addr, cluster.manager(2).addr]));
  const ids = await assign(store1, identity.nodeId, 3);
  await waitFor('tasks running', () => ids.every((id) => store1.get('task', id)?.Status.State === 'running'));

  // The leader dies: its dispatcher and its store member stop.
  await cluster.stopDispatcher(1);
  await cluster.stores.stopMember(1);
  const store2 = await lead(2);
  await waitFor('the agent on the new leader', () => agent!.manager === cluster.manager(2).addr, 15_000);
  await waitFor('the node ready under the new leader', () => store2.get('node', identity.nodeId)?.Status.State === 'ready');

  for (const id of ids) {
    expect(store2.get('task', id)!.Status.State).toBe('running');
    expect(executor.callsOf(id)).toMatchObject({ prepare: 1, start: 1, shutdown: 0 });
  }
  expect(executor.running().sort()).toEqual([...ids].sort());

  // The new session carries work both ways: a new task runs, an exit is reported.
  const [later] = await assign(store2, identity.nodeId, 1);
  await waitFor('the new task running', () => store2.get('task', later!)?.Status.State === 'running');
  executor.exit(ids[0]!, 7);
  await waitFor('the exit reported', () => store2.get('task', ids[0]!)?.Status.State === 'failed');
  expect(store2.get('task', ids[0]!)!.Status.Err).toBe('task: non-zero exit (7)');
});
