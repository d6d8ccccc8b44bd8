// What a user sees in `service ps` (the task's Status in the store) when a task cannot run: the
// agent (worker/agent) over the real runc executor and image store, against a real dispatcher on
// loopback, and a real registry. Every bad-input case of a pull is REJECTED with an error that
// names the image as the user wrote it and the cause, and leaves no partial layer in the cache; a
// container killed by the OOM killer is FAILED saying so; a container whose healthcheck keeps
// failing is FAILED as unhealthy and stopped by the agent (the orchestrator then replaces it, as
// any failed task).
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchCluster, waitFor } from '../../manager/dispatcher/testing/harness.js';
import { newId } from '../../manager/store/ids.js';
import type { MemoryStore } from '../../manager/store/memory-store.js';
import type { Task, TaskSpec } from '../../manager/store/types.js';
import { Agent } from '../agent/agent.js';
import type { ImageStore } from '../image/index.js';
import { buildTar, pushImage, startRegistry, type RegistryFixture } from '../testing/registry.js';
import type { RuncExecutor } from './runc-executor.js';
import { ExecutorCleanup, pushTestImage, testImageLayer } from './test-support.js';

let reg: RegistryFixture;
let cluster: DispatchCluster | undefined;
let store: MemoryStore;
let images: ImageStore;
let executor: RuncExecutor;
let agent: Agent | undefined;
let nodeId = '';
let dataRoot = '';
let image = '';
const cleanup = new ExecutorCleanup();

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushTestImage(reg, await testImageLayer(), 'shoal/agent-failures', { Env: ['PATH=/bin'] });
  images = await cleanup.imageStore();
  executor = await cleanup.executor({ images });
  cluster = await DispatchCluster.start({ size: 1, config: { heartbeatPeriodMs: 500, maxBatchIntervalMs: 10, leadershipCheckMs: 20 } });
  store = cluster.stores.rs(1).store;
  await waitFor('the dispatcher to lead', () => cluster!.manager(1).dispatcher?.leading === true);
  dataRoot = await mkdtemp(path.join(os.tmpdir(), 'shoal-agent-failures-'));
  const identity = await cluster.workerIdentity();
  nodeId = identity.nodeId;
  agent = await Agent.start({ dataRoot, identity, managers: [cluster.manager(1).addr], executor, statusBatchMs: 10, backoffInitialMs: 20, backoffMaxMs: 200 });
}, 60_000);

afterAll(async () => {
  await agent?.close();
  await cleanup.run();
  await cluster?.close();
  await reg?.stop();
  if (dataRoot !== '') await rm(dataRoot, { recursive: true, force: true });
});

async function assign(spec: TaskSpec): Promise<string> {
  const ID = newId();
  await store.update((tx) =>
    tx.create('task', {
      ID,
      Spec: spec,
      ServiceID: 'svc',
      Slot: 1,
      NodeID: nodeId,
      Status: { Timestamp: new Date().toISOString(), State: 'assigned', Message: '' },
      DesiredState: 'running',
    } as Task),
  );
  return ID;
}

async function rejected(imageRef: string): Promise<string> {
  const id = await assign({ ContainerSpec: { Image: imageRef, Command: ['true'] } });
  await waitFor(`task of ${imageRef} to be rejected`, () => store.get('task', id)?.Status.State === 'rejected', 30_000);
  return store.get('task', id)!.Status.Err ?? '';
}

/** Nothing but complete layers in the store's cache, and no staging left in tmp/. */
async function cacheIsClean(): Promise<void> {
  expect(await readdir(path.join(images.root, 'tmp'))).toEqual([]);
  for (const hex of await readdir(path.join(images.root, 'layers', 'sha256'))) {
    expect(await readdir(path.join(images.root, 'layers', 'sha256', hex))).toEqual(['fs', 'layer.json']);
  }
}

describe('a task that cannot run, as service ps shows it', () => {
  it('REJECTED naming the image and the cause: missing image, bad digest, truncated blob, unreachable registry', async () => {
    const missing = `${reg.host}/shoal/nowhere:1`;
    expect(await rejected(missing)).toContain(`pull ${missing}: not found`);

    const bad = await pushImage(reg, { repository: 'shoal/bad-digest', tag: 'v1', layers: [buildTar([{ type: 'file', path: 'x', content: 'agent bad digest' }])], config: { Cmd: ['sh'] } });
    await reg.corruptBlob(bad.layerDigests[0] as string);
    const badRef = `${reg.host}/shoal/bad-digest:v1`;
    const badErr = await rejected(badRef);
    expect(badErr).toContain(`pull ${badRef}: `);
    expect(badErr).toMatch(/digest/i);

    const cut = await pushImage(reg, { repository: 'shoal/truncated', tag: 'v1', layers: [buildTar([{ type: 'file', path: 'y', content: 'agent truncated '.repeat(4096) }])], config: { Cmd: ['sh'] } });
    reg.truncateBlobs.add(cut.layerDigests[0] as string);
    const cutRef = `${reg.host}/shoal/truncated:v1`;
    const cutErr = await rejected(cutRef);
    expect(cutErr).toContain(`pull ${cutRef}: `);
    expect(cutErr).toMatch(/truncated|ended after/i);

    // A port nothing listens on: bind one, note it, close it.
    const net = await import('node:net');
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const unreachable = `127.0.0.1:${port}/shoal/app:1`;
    const downErr = await rejected(unreachable);
    expect(downErr).toContain(`pull ${unreachable}: `);
    expect(downErr).toMatch(/unreachable|refused/i);

    await cacheIsClean();
    // Nothing of the rejected tasks is left once they leave the node's assignments.
    await store.update((tx) => {
      for (const t of tx.find('task')) tx.delete('task', t.ID);
    });
    await waitFor('the rejected tasks to be forgotten', () => executor.taskIds().length === 0, 30_000);
    expect(await readdir(path.join(executor.opts.dataRoot, 'tasks'))).toEqual([]);
  }, 90_000);

  it('FAILED with the OOM kill named when the container allocates past its memory limit', async () => {
    const id = await assign({ ContainerSpec: { Image: image, Command: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=96M', 'count=1'] }, Resources: { Limits: { MemoryBytes: 32 * 1024 * 1024 } } });
    await waitFor('the task to fail', () => store.get('task', id)?.Status.State === 'failed', 30_000);
    expect(store.get('task', id)!.Status.Err).toBe('task: non-zero exit (137): killed by the kernel OOM killer (memory limit reached)');
    expect(store.get('task', id)!.Status.ContainerStatus?.ExitCode).toBe(137);
    await store.update((tx) => tx.delete('task', id));
    await waitFor('the container to be removed', () => executor.taskIds().length === 0, 30_000);
  }, 60_000);

  it('FAILED as unhealthy when the healthcheck keeps failing, and its container stopped', async () => {
    const id = await assign({
      ContainerSpec: { Image: image, Command: ['sleep', '1000'], StopGracePeriod: 200_000_000, Healthcheck: { Test: ['CMD', 'false'], Interval: 100_000_000, Retries: 2 } },
    });
    await waitFor('the task to fail as unhealthy', () => store.get('task', id)?.Status.State === 'failed', 30_000);
    expect(store.get('task', id)!.Status.Err).toBe('task: container unhealthy');
    // The agent stops it at once: its replacement must not run beside it.
    await waitFor('the container to stop', () => executor.controller({ taskId: id, spec: {} }).inspect().state === 'exited', 30_000);
    await store.update((tx) => tx.delete('task', id));
    await waitFor('the container to be removed', () => executor.taskIds().length === 0, 30_000);
  }, 60_000);
});
