// `node --import tsx bench/executor/profile.ts [--reps N]`: what each step of prepare costs on this
// machine, measured alone (median of N): a process spawn from Node, the overlay mount, a loopback
// netns (`ip netns add` + `lo up`), mkfifo, a pull that only checks the manifest, and a whole prepare.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLoopbackNetns, deleteNetns } from '../../worker/executor/netns.js';
import { ExecutorCleanup, pushTestImage, testImageLayer, uniqueName } from '../../worker/executor/test-support.js';
import { startRegistry } from '../../worker/testing/registry.js';
import { median, round } from '../stats.js';

const run = promisify(execFile);

async function timed(reps: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn(i);
    ms.push(performance.now() - t0);
  }
  return round(median(ms), 2);
}

async function main(): Promise<void> {
  const repsArg = process.argv.indexOf('--reps');
  const reps = repsArg > 0 ? Math.min(200, Math.max(1, Number(process.argv[repsArg + 1]))) : 20;
  const reg = await startRegistry();
  const cleanup = new ExecutorCleanup();
  const rows: { step: string; median_ms: number }[] = [];
  try {
    const image = await pushTestImage(reg, await testImageLayer(), 'shoal/profile');
    const images = await cleanup.imageStore();
    const { image: rec } = await images.pull(image);
    const dir = await cleanup.tempDir('profile');
    rows.push({ step: 'spawn `true` from node', median_ms: await timed(reps, () => run('true')) });
    rows.push({ step: 'pull (manifest check, image present)', median_ms: await timed(reps, () => images.pull(image)) });
    const mounts: { unmount(): Promise<void> }[] = [];
    rows.push({ step: 'mountRootfs (mount -t overlay)', median_ms: await timed(reps, async (i) => mounts.push(await images.mountRootfs(rec.id, join(dir, `m${i}`)))) });
    for (const m of mounts) await m.unmount();
    const prefix = uniqueName('shoalprof');
    rows.push({ step: 'ip netns add + lo up', median_ms: await timed(reps, (i) => createLoopbackNetns(`${prefix}-${i}`)) });
    for (let i = 0; i < reps; i++) await deleteNetns(`${prefix}-${i}`);
    rows.push({ step: 'mkfifo ×3 (one spawn)', median_ms: await timed(reps, async (i) => {
      await mkdir(join(dir, `f${i}`));
      await run('mkfifo', ['a', 'b', 'c'].map((n) => join(dir, `f${i}`, n)));
    }) });
    const ex = await cleanup.executor({ images });
    const spec = { ContainerSpec: { Image: image, Command: ['sleep', '3600'] } };
    const tasks = Array.from({ length: reps }, (_, i) => ex.controller({ taskId: `p-${i}`, spec }));
    rows.push({ step: 'whole prepare()', median_ms: await timed(reps, (i) => (tasks[i] as (typeof tasks)[number]).prepare()) });
    rows.push({ step: 'whole start()', median_ms: await timed(reps, (i) => (tasks[i] as (typeof tasks)[number]).start()) });
    for (const t of tasks) await t.remove({ removeLogs: true });
    console.log(JSON.stringify(rows, null, 1));
  } finally {
    await cleanup.run();
    await reg.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
