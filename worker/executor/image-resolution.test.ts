// How often prepare asks the registry, seen from the registry (the fixture's counting proxy):
// never for a reference pinned to a digest the store has (what `docker service create` sends),
// once per prepare for a tag when answers are not reused, once for a burst of prepares of the same
// tag within tagFreshMs.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ImageStore } from '../image/index.js';
import { pushImage, startRegistry, type RegistryFixture } from '../testing/registry.js';
import { ExecutorCleanup, testImageLayer } from './test-support.js';
import type { TaskController } from './types.js';

let reg: RegistryFixture;
let tagged: string;
let pinned: string;
let images: ImageStore;
const suite = new ExecutorCleanup();
const cleanup = new ExecutorCleanup();
let seq = 0;

beforeAll(async () => {
  reg = await startRegistry();
  const pushed = await pushImage(reg, { repository: 'shoal/resolve', tag: 'v1', layers: [await testImageLayer()], config: { Cmd: ['sh'] } });
  tagged = `${reg.host}/shoal/resolve:v1`;
  pinned = `${reg.host}/shoal/resolve@${pushed.manifestDigest}`;
  images = await suite.imageStore();
  await images.pull(pinned);
});
afterAll(async () => {
  await suite.run();
  await reg?.stop();
});
afterEach(async () => {
  await cleanup.run();
});

function manifestRequests(): number {
  return reg.requests.filter((r) => r.path.includes('/manifests/')).length;
}

async function prepareAll(ex: Awaited<ReturnType<ExecutorCleanup['executor']>>, image: string, n: number): Promise<TaskController[]> {
  const tasks = Array.from({ length: n }, () => ex.controller({ taskId: `r${++seq}`, spec: { ContainerSpec: { Image: image, Command: ['true'] } } }));
  await Promise.all(tasks.map((t) => t.prepare()));
  return tasks;
}

describe('image resolution at prepare', () => {
  it('asks no registry for an image pinned to a digest the store has', async () => {
    const ex = await cleanup.executor({ images });
    const before = manifestRequests();
    const tasks = await prepareAll(ex, pinned, 3);
    expect(manifestRequests()).toBe(before);
    expect(new Set(tasks.map((t) => t.inspect().imageId)).size).toBe(1);
    for (const t of tasks) await t.remove({ removeLogs: true });
  });

  it('asks the registry for a tag at every prepare when answers are not reused', async () => {
    const ex = await cleanup.executor({ images, tagFreshMs: 0 });
    const before = manifestRequests();
    for (let i = 0; i < 3; i++) for (const t of await prepareAll(ex, tagged, 1)) await t.remove({ removeLogs: true });
    expect(manifestRequests() - before).toBe(3);
  });

  it('shares one registry answer among prepares of the same tag within tagFreshMs', async () => {
    const ex = await cleanup.executor({ images, tagFreshMs: 60_000 });
    const before = manifestRequests();
    const burst = await prepareAll(ex, tagged, 4);
    const later = await prepareAll(ex, tagged, 1);
    expect(manifestRequests() - before).toBe(1);
    for (const t of [...burst, ...later]) await t.remove({ removeLogs: true });
  });
});
