// The agent with the REAL runc executor (worker/executor) and a busybox image from a registry on
// loopback, against a real single-manager store and dispatcher over gRPC + mutual TLS: tasks
// written to the store as the scheduler would reach RUNNING in real containers, a non-zero exit
// is reported FAILED, desired-state SHUTDOWN stops a container, deleting tasks removes them.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { DispatchCluster, waitFor } from '../../manager/dispatcher/testing/harness.js';
import { newId } from '../../manager/store/ids.js';
import type { MemoryStore } from '../../manager/store/memory-store.js';
import type { RuncExecutor } from '../executor/runc-executor.js';
import { ExecutorCleanup, pushTestImage, testImageLayer } from '../executor/test-support.js';
import { startRegistry, type RegistryFixture } from '../testing/registry.js';
import { Agent } from './agent.js';

let reg: RegistryFixture | undefined;
let cluster: DispatchCluster | undefined;
let store: MemoryStore;
let image: string;
let executor: RuncExecutor;
let agent: Agent | undefined;
let dataRoot = '';
const cleanup = new ExecutorCleanup();

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushTestImage(reg, await testImageLayer(), 'shoal/agent', { Env: ['PATH=/bin'] });
  executor = await cleanup.executor({ images: await cleanup.imageStore() });
  cluster = await DispatchCluster.start({ size: 1, config: { heartbeatPeriodMs: 500, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } });
  store = cluster.stores.rs(1).store;
  await waitFor('the dispatcher to lead', () => cluster!.manager(1).dispatcher?.leading === true);
  dataRoot = await mkdtemp(path.join(os.tmpdir(), 'shoal-agent-runc-'));
}, 60_000);

afterAll(async () => {
  await agent?.close();
  await cleanup.run();
  await cluster?.close();
  await reg?.stop();
  if (dataRoot !== '') await rm(dataRoot, { recursive: true, force: true });
});

it('runs real containers: RUNNING, non-zero exit → FAILED, SHUTDOWN stops, delete removes', async () => {
  const identity = await cluster!.workerIdentity();
  agent = await Agent.start({ dataRoot, identity, managers: [cluster!.manager(1).addr], executor, statusBatchMs: 10, backoffInitialMs: 20, backoffMaxMs: 200 });
  const [sleeper, failing] = [newId(), newId()];
  await store.update((tx) => {
    const base = {
      ServiceID: 'svc',
      Slot: 1,
      NodeID: identity.nodeId,
      Status: { Timestamp: new Date().toISOString(), State: 'assigned' as const, Message: '' },
      DesiredState: 'running' as const,
    };
    tx.create('task', { ...base, ID: sleeper, Spec: { ContainerSpec: { Image: image, Command: ['sleep', '1000'], StopGracePeriod: 300_000_000 } } });
    tx.create('task', { ...base, ID: failing, Spec: { ContainerSpec: { Image: image, Command: ['sh', '-c', 'exit 3'] } } });
  });
  await waitFor('the failing task to fail', () => store.get('task', failing)?.Status.State === 'failed', 30_000);
  expect(store.get('task', failing)!.Status.Err).toBe('task: non-zero exit (3)');
  await waitFor('the sleeper to run', () => store.get('task', sleeper)?.Status.State === 'running', 30_000);
  expect(executor.controller({ taskId: sleeper, spec: {} }).inspect().state).toBe('running');
  expect(store.get('task', sleeper)!.Status.ContainerStatus?.PID).toBeGreaterThan(0);

  await store.update((tx) => {
    const t = tx.get('task', sleeper)!;
    tx.update('task', { ...t, DesiredState: 'shutdown' });
  });
  await waitFor('the sleeper to shut down', () => store.get('task', sleeper)?.Status.State === 'shutdown', 30_000);
  expect(executor.controller({ taskId: sleeper, spec: {} }).inspect().state).toBe('exited');

  await store.update((tx) => {
    tx.delete('task', sleeper);
    tx.delete('task', failing);
  });
  await waitFor('the containers to be removed', () => executor.taskIds().length === 0, 30_000);
}, 60_000);
