// A restarted executor (a new RuncExecutor on the same data root, as after a shoald restart) adopts
// the containers the old one left: running ones keep running with the same PID and their logs and
// exit are followed again; ones that ended meanwhile report their exit; ones no longer wanted are
// removed; runc containers with no task are removed.
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ImageStore } from '../image/index.js';
import { startRegistry, type RegistryFixture } from '../testing/registry.js';
import { cgroupExists } from './cgroups.js';
import { mountsUnder } from './host-mounts.js';
import type { RuncExecutor } from './runc-executor.js';
import { readTaskLog } from './task-log.js';
import { ExecutorCleanup, pushTestImage, testImageLayer, uniqueName } from './test-support.js';
import type { TaskController } from './types.js';

let reg: RegistryFixture;
let image: string;
let images: ImageStore;
const suite = new ExecutorCleanup();
const cleanup = new ExecutorCleanup();

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushTestImage(reg, await testImageLayer(), 'shoal/adopt');
  images = await suite.imageStore();
});
afterAll(async () => {
  await suite.run();
  await reg?.stop();
});
afterEach(async () => {
  await cleanup.run();
});

const TICKER = ['sh', '-c', 'trap "echo bye; exit 0" TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done'];

async function started(ex: RuncExecutor, taskId: string, command: readonly string[], health = false): Promise<TaskController> {
  const t = ex.controller({
    taskId,
    spec: { ContainerSpec: { Image: image, Command: command, StopGracePeriod: 5e9, ...(health ? { Healthcheck: { Test: ['CMD', 'true'], Interval: 0.1e9 } } : {}) } },
  });
  await t.prepare();
  await t.start();
  return t;
}

function logLines(t: TaskController): string[] {
  return readTaskLog(t.inspect().logPath as string).map((e) => e.line);
}

async function until(what: string, pred: () => boolean, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function untilAsync(what: string, pred: () => Promise<boolean>, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Two executors in a row on one data root, sharing the cgroup parent and netns prefix. */
async function executorPair(): Promise<{ first: RuncExecutor; restart: () => Promise<RuncExecutor> }> {
  const dataRoot = await cleanup.tempDir('adopt');
  const cgroupParent = uniqueName('shoal-test');
  const netnsPrefix = uniqueName('shoaltest');
  const first = await cleanup.executor({ images, dataRoot, cgroupParent, netnsPrefix });
  return {
    first,
    restart: async () => {
      await first.close();
      return cleanup.executor({ images, dataRoot, cgroupParent, netnsPrefix });
    },
  };
}

describe('adoption after an executor restart', () => {
  it('re-attaches to a running container: same PID, logs keep flowing, health resumes, stop works', async () => {
    const { first, restart } = await executorPair();
    const before = await started(first, 'keeper', TICKER, true);
    const pid = before.inspect().pid as number;
    await until('a tick', () => logLines(before).some((l) => l.startsWith('tick')));
    const second = await restart();
    const after = second.controller({ taskId: 'keeper', spec: { ContainerSpec: { Image: image } } });
    expect(after).not.toBe(before);
    expect(after.inspect()).toMatchObject({ state: 'running', pid, adopted: true });
    expect(second.taskIds()).toEqual(['keeper']);
    // prepare and start of an adopted running task are no-ops: nothing is duplicated.
    await after.prepare();
    await after.start();
    expect(after.inspect().pid).toBe(pid);
    expect(JSON.parse(execFileSync('runc', ['--root', join(second.opts.dataRoot, 'runc'), 'list', '--format', 'json'], { encoding: 'utf8' })).length).toBe(1);
    const seen = logLines(after).length;
    await until('new ticks after the restart', () => logLines(after).length > seen + 3);
    await until('healthy again', () => after.inspect().health.status === 'healthy');
    await after.shutdown();
    expect(await after.wait()).toMatchObject({ state: 'complete', exitCode: 0 });
    expect(logLines(after)).toContain('bye');
  });

  it('reports the exit of a container that ended while no executor watched', async () => {
    const { first, restart } = await executorPair();
    const t = await started(first, 'quitter', ['sh', '-c', 'sleep 0.5; echo last words; exit 7']);
    await first.close();
    // Wait for the shim's status file, the one trace an exit leaves while no executor runs.
    const exitFile = join(first.opts.dataRoot, 'tasks', 'quitter', 'exit');
    for (let i = 0; i < 200 && (await readFile(exitFile, 'utf8').catch(() => '')) === ''; i++) await new Promise((r) => setTimeout(r, 50));
    const second = await restart();
    const after = second.controller({ taskId: t.taskId, spec: { ContainerSpec: { Image: image } } });
    expect(await after.wait()).toMatchObject({ state: 'failed', exitCode: 7, message: 'task: non-zero exit (7)' });
    expect(after.inspect().state).toBe('exited');
    expect(logLines(after)).toContain('last words');
  });

  it('reconcile removes containers whose task is gone and keeps the wanted ones', async () => {
    const { first, restart } = await executorPair();
    const keep = await started(first, 'wanted', ['sleep', '60']);
    const drop = await started(first, 'unwanted', ['sleep', '60']);
    const keepPid = keep.inspect().pid;
    const dropDir = join(first.opts.dataRoot, 'tasks', 'unwanted');
    const config = JSON.parse(await readFile(join(dropDir, 'bundle', 'config.json'), 'utf8')) as { linux: { namespaces: { type: string; path?: string }[]; cgroupsPath: string } };
    expect(drop.inspect().state).toBe('running');
    const second = await restart();
    const result = await second.reconcile(['wanted']);
    expect(result).toEqual({ kept: ['wanted'], removed: ['unwanted'] });
    expect(second.taskIds()).toEqual(['wanted']);
    expect(second.controller({ taskId: 'wanted', spec: {} }).inspect()).toMatchObject({ state: 'running', pid: keepPid });
    expect(await second.runc.state('unwanted')).toBeUndefined();
    expect(await mountsUnder(dropDir)).toEqual([]);
    expect(await cgroupExists(config.linux.cgroupsPath)).toBe(false);
  });

  it('keeps a prepared task that was never started; the new executor starts it, even without its waiting shim', async () => {
    const { first, restart } = await executorPair();
    await first.controller({ taskId: 'later', spec: { ContainerSpec: { Image: image, Command: ['echo', 'started late'] } } }).prepare();
    // Kill the shim that waits for `start` (its PID is in shim.pid): start must make another.
    const taskDir = join(first.opts.dataRoot, 'tasks', 'later');
    const shimPid = Number(await readFile(join(taskDir, 'shim.pid'), 'utf8'));
    let killed = 0;
    const status = await readFile(`/proc/${shimPid}/status`, 'utf8').catch(() => '');
    if (/^State:\s+[SRD]/m.test(status)) {
      process.kill(shimPid, 'SIGKILL');
      killed++;
    }
    expect(killed).toBe(1);
    // Gone (or a zombie) before the restart, as a shim killed long before would be.
    await untilAsync('the killed shim to end', async () => !/^State:\s+[SRD]/m.test(await readFile(`/proc/${shimPid}/status`, 'utf8').catch(() => '')));
    const second = await restart();
    const t = second.controller({ taskId: 'later', spec: { ContainerSpec: { Image: image } } });
    expect(t.inspect().state).toBe('prepared');
    await t.start();
    expect(await t.wait()).toMatchObject({ state: 'complete', exitCode: 0 });
    expect(logLines(t)).toEqual(['started late']);
  });

  it('forks shims through a new launcher when the old one was killed', async () => {
    const { first } = await executorPair();
    const a = await started(first, 'before', ['echo', 'one']);
    expect(await a.wait()).toMatchObject({ state: 'complete' });
    const launcher = first.launcher.pid as number;
    process.kill(launcher, 'SIGKILL');
    await untilAsync('the launcher to end', async () => !/^State:\s+[SRD]/m.test(await readFile(`/proc/${launcher}/status`, 'utf8').catch(() => '')));
    const b = await started(first, 'after', ['echo', 'two']);
    expect(await b.wait()).toMatchObject({ state: 'complete' });
    expect(logLines(b)).toEqual(['two']);
    expect(first.launcher.pid).not.toBe(launcher);
  });

  it('removes a runc container in its root that no task directory explains', async () => {
    const { first, restart } = await executorPair();
    await started(first, 'stray', ['sleep', '60']);
    // Losing the task directory's record (a crash mid-prepare) leaves a container nobody owns.
    await writeFile(join(first.opts.dataRoot, 'tasks', 'stray', 'task.json'), 'not json');
    const second = await restart();
    expect(second.taskIds()).toEqual([]);
    expect(await second.runc.state('stray')).toBeUndefined();
    expect(await mountsUnder(join(second.opts.dataRoot, 'tasks'))).toEqual([]);
  });
});
