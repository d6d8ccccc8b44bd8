// Image gc across a daemon restart: a new image store and a new executor on the same roots adopt a
// running container; gc then removes an image no task uses (and its layers) but never the image
// under the running container, even when the caller names no image in use; once that task is
// removed, its image and layers go too. The periodic collector does the same with the executor's
// images in use, and keeps what was used recently.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../image/index.js';
import { buildTar, pushImage, startRegistry, type PushedImage, type RegistryFixture } from '../testing/registry.js';
import { ImageGarbageCollector } from './image-gc.js';
import { ExecutorCleanup, testImageLayer, uniqueName } from './test-support.js';

let reg: RegistryFixture;
let running: PushedImage;
let unused: PushedImage;
const cleanup = new ExecutorCleanup();

beforeAll(async () => {
  reg = await startRegistry();
  running = await pushImage(reg, { repository: 'shoal/gc-running', tag: 'v1', layers: [await testImageLayer()], config: { Cmd: ['sh'] } });
  unused = await pushImage(reg, { repository: 'shoal/gc-unused', tag: 'v1', layers: [buildTar([{ type: 'file', path: 'only-here', content: 'unused image' }])], config: { Cmd: ['sh'] } });
});
afterAll(async () => {
  await reg?.stop();
});
afterEach(async () => {
  await cleanup.run();
});

async function layerDirs(store: ImageStore): Promise<string[]> {
  return (await readdir(join(store.root, 'layers', 'sha256'))).map((h) => `sha256:${h}`).sort();
}

describe('image gc after a daemon restart', () => {
  it('keeps the image under an adopted running container, removes unused ones, and the adopted one once its task is gone', async () => {
    const imageRoot = await cleanup.tempDir('gc-images');
    const dataRoot = await cleanup.tempDir('gc-exec');
    const cgroupParent = uniqueName('shoal-test');
    const netnsPrefix = uniqueName('shoaltest');
    const before = await ImageStore.open({ root: imageRoot, dockerHubFallback: false });
    await before.pull(`${reg.host}/shoal/gc-unused:v1`);
    const first = await cleanup.executor({ images: before, dataRoot, cgroupParent, netnsPrefix });
    const t = first.controller({ taskId: 'survivor', spec: { ContainerSpec: { Image: `${reg.host}/shoal/gc-running:v1`, Command: ['sleep', '600'] } } });
    await t.prepare();
    await t.start();
    const pid = t.inspect().pid;
    await first.close();

    // The restarted daemon: a new store and a new executor on the same roots.
    const after = await ImageStore.open({ root: imageRoot, dockerHubFallback: false });
    const second = await cleanup.executor({ images: after, dataRoot, cgroupParent, netnsPrefix });
    const adopted = second.controller({ taskId: 'survivor', spec: {} });
    expect(adopted.inspect()).toMatchObject({ state: 'running', pid, adopted: true, imageId: running.configDigest });
    expect(second.imagesInUse()).toEqual([running.configDigest]);
    expect(after.mountedImages().get(running.configDigest)).toBe(1);

    // Even a caller that names nothing in use cannot take the running container's image.
    expect(await after.gc([])).toEqual({ removedImages: [unused.configDigest], removedLayers: unused.diffIds });
    expect(await layerDirs(after)).toEqual([...running.diffIds].sort());
    const rootfs = join(dataRoot, 'tasks', 'survivor', 'bundle', 'rootfs');
    expect(await readFile(join(rootfs, 'srv', 'seed.txt'), 'utf8')).toBe('from the image\n');
    expect(adopted.inspect().state).toBe('running');

    await adopted.remove({ removeLogs: true });
    expect(after.mountedImages().size).toBe(0);
    expect(await after.gc(second.imagesInUse())).toEqual({ removedImages: [running.configDigest], removedLayers: running.diffIds });
    expect(await layerDirs(after)).toEqual([]);
    expect(after.list()).toEqual([]);
  });

  it('the periodic collector removes images no task holds, but keeps recently used ones', async () => {
    const store = await ImageStore.open({ root: await cleanup.tempDir('gc-images'), dockerHubFallback: false });
    const ex = await cleanup.executor({ images: store });
    await store.pull(`${reg.host}/shoal/gc-unused:v1`);
    const t = ex.controller({ taskId: 'holder', spec: { ContainerSpec: { Image: `${reg.host}/shoal/gc-running:v1`, Command: ['true'] } } });
    await t.prepare();

    const recent = new ImageGarbageCollector({ images: store, inUse: () => ex.imagesInUse(), keepUsedWithinMs: 60_000 });
    expect(await recent.runOnce()).toEqual({ removedImages: [], removedLayers: [] });
    await recent.stop();

    const strict = new ImageGarbageCollector({ images: store, inUse: () => ex.imagesInUse(), keepUsedWithinMs: 0 });
    expect(await strict.runOnce()).toEqual({ removedImages: [unused.configDigest], removedLayers: unused.diffIds });
    expect(store.list().map((i) => i.id)).toEqual([running.configDigest]);
    await t.remove({ removeLogs: true });
    expect(await strict.runOnce()).toEqual({ removedImages: [running.configDigest], removedLayers: running.diffIds });
    await strict.stop();
  });
});
