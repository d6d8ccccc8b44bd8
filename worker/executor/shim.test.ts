// The native shim as `ps` shows it: one small process per running container (no runc stays beside
// it), the container's init is its child, nothing (not even a zombie) is left after remove, and the
// launcher of a closed executor ends once its last shim has ended.
import { access, constants, copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ImageStore } from '../image/index.js';
import { startRegistry, type RegistryFixture } from '../testing/registry.js';
import { ackShim, ShimLauncher } from './shim.js';
import { compileShim, ShimBuildError, shimBinary, shimSourcePath } from './shim/build.js';
import { ExecutorCleanup, pushTestImage, testImageLayer } from './test-support.js';

let reg: RegistryFixture;
let image: string;
let images: ImageStore;
const suite = new ExecutorCleanup();
const cleanup = new ExecutorCleanup();

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushTestImage(reg, await testImageLayer(), 'shoal/shim');
  images = await suite.imageStore();
});
afterAll(async () => {
  await suite.run();
  await reg?.stop();
});
afterEach(async () => {
  await cleanup.run();
});

/** State letter and parent of a process; undefined once it is gone (reaped). */
async function proc(pid: number): Promise<{ state: string; ppid: number; comm: string } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  const close = stat.lastIndexOf(')');
  const [state, ppid] = stat.slice(close + 2).split(' ');
  return { state: state as string, ppid: Number(ppid), comm: stat.slice(stat.indexOf('(') + 1, close) };
}

/** Children of pid (from /proc/PID/task/PID/children). */
async function children(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(' ').filter((s) => s.trim() !== '').map(Number);
}

/** The children of pid once they are `want` (bounded: 100 × 50 ms), or what they are at the end. */
async function untilChildren(pid: number, want: readonly number[], attempts = 100): Promise<number[]> {
  let seen = await children(pid);
  for (let i = 0; i < attempts && JSON.stringify(seen) !== JSON.stringify(want); i++) {
    await new Promise((r) => setTimeout(r, 50));
    seen = await children(pid);
  }
  return seen;
}

async function untilGone(what: string, pid: number, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if ((await proc(pid)) === undefined) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} (PID ${pid}) is still there: ${JSON.stringify(await proc(pid))}`);
}

describe('the native shim', () => {
  it('is built once and cached under a name keyed by its source', async () => {
    const a = await shimBinary();
    expect(a).toMatch(/shoal-shim-[0-9a-f]{16}$/);
    expect(await shimBinary()).toBe(a);
    await access(a, constants.X_OK);
  });

  it('builds into a fresh directory with nothing left but the binary; a changed source gets a new name', async () => {
    const dir = await cleanup.tempDir('shim-build');
    const first = await compileShim(shimSourcePath(), dir);
    await access(first, constants.X_OK);
    expect(await readdir(dir)).toEqual([first.slice(dir.length + 1)]);
    const changed = join(dir, 'changed.c');
    await writeFile(changed, `${await readFile(shimSourcePath(), 'utf8')}\n/* changed */\n`);
    const second = await compileShim(changed, dir);
    expect(second).not.toBe(first);
    expect(await compileShim(changed, dir)).toBe(second);
  });

  it('fails with a ShimBuildError naming the compiler when it is missing or the source does not compile', async () => {
    const dir = await cleanup.tempDir('shim-build');
    const missing = compileShim(shimSourcePath(), dir, 'shoal-no-such-gcc');
    await expect(missing).rejects.toBeInstanceOf(ShimBuildError);
    await expect(missing).rejects.toThrow(/needs shoal-no-such-gcc, which is not installed .*apt-get install gcc libc6-dev/);
    const broken = join(dir, 'broken.c');
    await writeFile(broken, 'int main(void) { return nope; }\n');
    await expect(compileShim(broken, dir)).rejects.toThrow(/gcc could not build the container shim .*nope/s);
    // No half-written binary or temporary file stays behind.
    expect((await readdir(dir)).sort()).toEqual(['broken.c']);
  });

  it('is the only helper of a running container, the parent of its init, and leaves nothing after remove', async () => {
    const ex = await cleanup.executor({ images });
    const t = ex.controller({ taskId: 'watched', spec: { ContainerSpec: { Image: image, Command: ['sleep', '60'] } } });
    await t.prepare();
    await t.start();
    const shimPid = Number(await readFile(join(ex.opts.dataRoot, 'tasks', 'watched', 'shim.pid'), 'utf8'));
    const init = t.inspect().pid as number;
    expect((await proc(shimPid))?.state).toMatch(/[SR]/);
    // Once runc has exited (start() returns when runc has written the init's PID, a moment before
    // runc itself ends), the container's init is reparented to the shim, its only child.
    expect(await untilChildren(shimPid, [init])).toEqual([init]);
    expect((await proc(init))?.ppid).toBe(shimPid);
    // The shim is a child of the launcher, which reaps it.
    expect((await proc(shimPid))?.ppid).toBe(ex.launcher.pid);
    await t.remove({ removeLogs: true });
    await untilGone('the shim after remove', shimPid);
    await untilGone('the container init after remove', init);
  });

  it('reports the init exit code, or 128+N when signal N ended it', async () => {
    const ex = await cleanup.executor({ images });
    const quits = ex.controller({ taskId: 'quits', spec: { ContainerSpec: { Image: image, Command: ['sh', '-c', 'exit 42'] } } });
    await quits.prepare();
    await quits.start();
    expect(await quits.wait()).toMatchObject({ state: 'failed', exitCode: 42 });
    const killed = ex.controller({ taskId: 'killed', spec: { ContainerSpec: { Image: image, Command: ['sleep', '60'] } } });
    await killed.prepare();
    await killed.start();
    await killed.terminate();
    expect(await killed.wait()).toMatchObject({ state: 'failed', exitCode: 137, message: 'task: non-zero exit (137)' });
    for (const t of [quits, killed]) await t.remove({ removeLogs: true });
  });

  it("a closed executor's launcher keeps reaping until its last shim has ended, then ends", async () => {
    const first = await cleanup.executor({ images });
    const t = first.controller({ taskId: 'outlives', spec: { ContainerSpec: { Image: image, Command: ['sleep', '60'], StopGracePeriod: 1e9 } } });
    await t.prepare();
    await t.start();
    const launcher = first.launcher.pid as number;
    const shimPid = Number(await readFile(join(first.opts.dataRoot, 'tasks', 'outlives', 'shim.pid'), 'utf8'));
    await first.close();
    // The daemon is gone: the container runs on, its shim too, and the launcher waits for it.
    expect((await proc(shimPid))?.state).toMatch(/[SR]/);
    expect((await proc(launcher))?.state).toMatch(/[SR]/);
    const second = await cleanup.executor({ images, dataRoot: first.opts.dataRoot, cgroupParent: first.cgroupParent, netnsPrefix: first.netnsPrefix });
    const adopted = second.controller({ taskId: 'outlives', spec: {} });
    expect(adopted.inspect()).toMatchObject({ state: 'running', adopted: true });
    await adopted.remove({ removeLogs: true });
    await untilGone('the shim after remove', shimPid);
    await untilGone('the old launcher once its shims have ended', launcher);
  });

  it('a launcher spawned again after its binary was removed from the cache builds it again', async () => {
    const dir = await cleanup.tempDir('shim-launcher');
    const bin = join(dir, 'shoal-shim');
    let rebuilds = 0;
    const rebuild = async (): Promise<string> => {
      rebuilds++;
      await copyFile(await shimBinary(), bin);
      return bin;
    };
    await rebuild();
    const launcher = new ShimLauncher(bin, 'runc', join(dir, 'runc'), rebuild);
    cleanup.defer(async () => launcher.close());
    const launchIn = async (name: string): Promise<number> => {
      const taskDir = join(dir, name);
      await mkdir(taskDir);
      const pid = await launcher.launch({ taskDir, containerId: name, now: false });
      // The shim is ready once it holds its FIFOs; cancelling it (any line but `start`) ends it.
      const ready = (): Promise<boolean> => access(join(taskDir, 'shim.ready')).then(
        () => true,
        () => false,
      );
      for (let i = 0; i < 200 && !(await ready()); i++) await new Promise((r) => setTimeout(r, 25));
      expect(await ready()).toBe(true);
      ackShim(taskDir);
      await untilGone('the cancelled shim', pid);
      return pid;
    };
    await launchIn('a');
    const first = launcher.pid as number;
    process.kill(first, 'SIGKILL');
    await untilGone('the killed launcher', first);
    await rm(bin);
    await launchIn('b');
    expect(rebuilds).toBe(2);
    expect(launcher.pid).not.toBe(first);
  });
});
