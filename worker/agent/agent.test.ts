// The agent against a real single-manager store with its dispatcher, over real gRPC + mutual TLS
// on loopback, with CA-issued worker certificates. Containers are the test executor's
// (testing/fake-executor.ts); the runc executor has its own test (runc-agent.test.ts).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { NodeIdentity } from '../../ca/identity.js';
import { DispatchCluster, waitFor } from '../../manager/dispatcher/testing/harness.js';
import { newId } from '../../manager/store/ids.js';
import type { MemoryStore } from '../../manager/store/memory-store.js';
import type { Task, TaskState } from '../../manager/store/types.js';
import { Agent } from './agent.js';
import { FakeExecutor } from './testing/fake-executor.js';

let cluster: DispatchCluster;
let store: MemoryStore;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  cluster = await DispatchCluster.start({ size: 1, config: { heartbeatPeriodMs: 200, heartbeatJitterMs: 20, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } });
  store = cluster.stores.rs(1).store;
  await waitFor('the dispatcher to lead', () => cluster.manager(1).dispatcher?.leading === true);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await cluster?.close();
});

interface Worker {
  readonly identity: NodeIdentity;
  readonly dataRoot: string;
  readonly executor: FakeExecutor;
  agent: Agent;
}

async function startAgent(identity: NodeIdentity, dataRoot: string, executor: FakeExecutor): Promise<Agent> {
  const agent = await Agent.start({
    dataRoot,
    identity,
    managers: [cluster.manager(1).addr],
    executor,
    description: { Hostname: `host-${identity.nodeId.slice(0, 6)}`, Platform: { OS: 'linux', Architecture: 'x86_64' }, Engine: { EngineVersion: 'test', Labels: { disk: 'ssd' } } },
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    statusBatchMs: 10,
  });
  return agent;
}

async function newWorker(): Promise<Worker> {
  const identity = await cluster.workerIdentity();
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'shoal-agent-'));
  const executor = new FakeExecutor(1);
  const w: Worker = { identity, dataRoot, executor, agent: await startAgent(identity, dataRoot, executor) };
  cleanups.push(async () => {
    await w.agent.close();
    await rm(dataRoot, { recursive: true, force: true });
  });
  await waitFor('the node to be ready', () => store.get('node', identity.nodeId)?.Status.State === 'ready');
  return w;
}

/** Writes tasks as the scheduler would: on the node, ASSIGNED, desired RUNNING. */
async function assign(nodeId: string, count: number, extra: Partial<Task> = {}): Promise<string[]> {
  const ids = Array.from({ length: count }, () => newId());
  await store.update((tx) => {
    for (const ID of ids) {
      tx.create('task', {
        ID,
        Spec: { ContainerSpec: { Image: 'busybox', Command: ['sleep', '1000'] } },
        ServiceID: 'svc',
        Slot: 1,
        NodeID: nodeId,
        Status: { Timestamp: new Date().toISOString(), State: 'assigned', Message: 'scheduler assigned task to node' },
        DesiredState: 'running',
        ...extra,
      });
    }
  });
  return ids;
}

function stateOf(taskId: string): TaskState | undefined {
  return store.get('task', taskId)?.Status.State;
}

async function waitState(taskIds: readonly string[], state: TaskState, limitMs = 10_000): Promise<void> {
  await waitFor(`tasks to be ${state}`, () => taskIds.every((id) => stateOf(id) === state), limitMs);
}

describe('agent', () => {
  it('connects with its worker certificate and its Node object appears ready with its description', async () => {
    const w = await newWorker();
    await waitFor('the session to be established', () => w.agent.manager !== null);
    const node = store.get('node', w.identity.nodeId)!;
    expect(node.Spec.Role).toBe('worker');
    expect(node.Description?.Hostname).toBe(`host-${w.identity.nodeId.slice(0, 6)}`);
    expect(node.Description?.Engine?.Labels).toEqual({ disk: 'ssd' });
    expect(w.agent.manager).toBe(cluster.manager(1).addr);
  });

  it('runs the tasks assigned to its node: they reach RUNNING through its reports', async () => {
    const w = await newWorker();
    const other = await newWorker();
    const ids = await assign(w.identity.nodeId, 3);
    await waitState(ids, 'running');
    expect(w.executor.running().sort()).toEqual([...ids].sort());
    expect(other.executor.running()).toEqual([]);
    const t = store.get('task', ids[0]!)!;
    expect(t.Status.ContainerStatus?.ContainerID).toBe(ids[0]);
    expect(w.executor.descriptorOf(ids[0]!)?.spec.ContainerSpec?.Command).toEqual(['sleep', '1000']);
  });

  it('a task whose process exits non-zero goes FAILED with "task: non-zero exit (N)"; exit 0 goes COMPLETE', async () => {
    const w = await newWorker();
    const [bad, good] = [newId(), newId()];
    w.executor.plan(bad, { exitCodeAfterStart: 3 });
    w.executor.plan(good, { exitCodeAfterStart: 0 });
    await store.update((tx) => {
      for (const ID of [bad, good]) {
        tx.create('task', {
          ID,
          Spec: { ContainerSpec: { Image: 'busybox' } },
          ServiceID: 'svc',
          Slot: 1,
          NodeID: w.identity.nodeId,
          Status: { Timestamp: new Date().toISOString(), State: 'assigned', Message: '' },
          DesiredState: 'running',
        });
      }
    });
    await waitState([bad], 'failed');
    await waitState([good], 'complete');
    expect(store.get('task', bad)!.Status.Err).toBe('task: non-zero exit (3)');
    expect(store.get('task', bad)!.Status.ContainerStatus?.ExitCode).toBe(3);
    expect(store.get('task', good)!.Status.ContainerStatus?.ExitCode).toBe(0);
  });

  it('a task that cannot be prepared is REJECTED with the reason', async () => {
    const w = await newWorker();
    const id = newId();
    w.executor.plan(id, { failPrepare: 'image busybox:nope not found' });
    await store.update((tx) =>
      tx.create('task', {
        ID: id,
        Spec: { ContainerSpec: { Image: 'busybox:nope' } },
        ServiceID: 'svc',
        Slot: 1,
        NodeID: w.identity.nodeId,
        Status: { Timestamp: new Date().toISOString(), State: 'assigned', Message: '' },
        DesiredState: 'running',
      }),
    );
    await waitState([id], 'rejected');
    expect(store.get('task', id)!.Status.Err).toContain('image busybox:nope not found');
  });

  it('desired state SHUTDOWN stops a running task; deleting the task removes its container', async () => {
    const w = await newWorker();
    const [id] = await assign(w.identity.nodeId, 1);
    await waitState([id!], 'running');
    await store.update((tx) => {
      const t = tx.get('task', id!)!;
      tx.update('task', { ...t, DesiredState: 'shutdown' });
    });
    await waitState([id!], 'shutdown');
    expect(w.executor.stateOf(id!)).toBe('exited');
    expect(w.executor.callsOf(id!).shutdown).toBe(1);
    await store.update((tx) => tx.delete('task', id!));
    await waitFor('the container to be removed', () => w.executor.stateOf(id!) === 'removed');
    expect(w.agent.taskIds()).not.toContain(id);
  });

  it('a restarted agent resumes from its database: tasks keep running, none is started twice', async () => {
    const w = await newWorker();
    const ids = await assign(w.identity.nodeId, 2);
    await waitState(ids, 'running');
    await w.agent.close();
    // While the agent is away, one task is told to stop and a new one is assigned.
    await store.update((tx) => {
      const t = tx.get('task', ids[1]!)!;
      tx.update('task', { ...t, DesiredState: 'shutdown' });
    });
    const [later] = await assign(w.identity.nodeId, 1);
    const tasksBefore = store.count('task');
    w.agent = await startAgent(w.identity, w.dataRoot, w.executor);
    // Resumed from the database before any manager answered.
    expect(w.agent.taskIds().sort()).toEqual([...ids].sort());
    await waitState([ids[0]!, later!], 'running');
    await waitState([ids[1]!], 'shutdown');
    expect(w.executor.callsOf(ids[0]!).start).toBe(1);
    expect(w.executor.callsOf(ids[0]!).prepare).toBe(1);
    expect(w.executor.running().sort()).toEqual([ids[0]!, later!].sort());
    expect(store.count('task')).toBe(tasksBefore);
    expect(store.find('node').filter((n) => n.ID === w.identity.nodeId)).toHaveLength(1);
    expect(store.get('node', w.identity.nodeId)!.Status.State).toBe('ready');
  });

  it('a stopped agent stops heartbeating: its node goes down, and comes back ready when it restarts', async () => {
    const w = await newWorker();
    const [id] = await assign(w.identity.nodeId, 1);
    await waitState([id!], 'running');
    await w.agent.close();
    await waitFor('the node to be marked down', () => store.get('node', w.identity.nodeId)!.Status.State === 'down');
    w.agent = await startAgent(w.identity, w.dataRoot, w.executor);
    await waitFor('the node to be ready again', () => store.get('node', w.identity.nodeId)!.Status.State === 'ready');
    expect(stateOf(id!)).toBe('running');
    expect(w.executor.callsOf(id!).start).toBe(1);
  });
});
