// `npm run bench:executor [-- --json] [-- --tasks N] [-- --pull always|missing]`
//
// Task start latency, side by side in one run, interleaved task by task:
//   shoal — RuncExecutor: controller → prepare (pull check against the registry on loopback, overlay
//           mount, loopback netns, /etc files, config.json, FIFOs) → start (shim, `runc run`, PID
//           file) until RUNNING.
//   runc  — bare `runc run -d` of a bundle the executor prepared (untimed), with runc making the
//           network namespace itself, until the command returns (the container runs).
// Every container stays up until the end (N containers running at once, as on a busy worker), then
// all are removed. Rows: {bench:'executor', system, tasks, p50_ms, p99_ms, …}.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Runc } from '../../worker/executor/runc.js';
import { ExecutorCleanup, pushTestImage, testImageLayer } from '../../worker/executor/test-support.js';
import type { TaskController } from '../../worker/executor/types.js';
import { startRegistry } from '../../worker/testing/registry.js';
import { percentile, round, sortedAsc } from '../stats.js';

const TASKS_MAX = 500;

interface Args {
  json: boolean;
  tasks: number;
  /** always: every prepare asks the registry for the manifest (Docker's agent does); missing: local copy first. */
  pull: 'always' | 'missing';
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { json: false, tasks: 50, pull: 'always' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--json') a.json = true;
    else if (arg === '--tasks') {
      const v = Number.parseInt(argv[++i] ?? '', 10);
      if (!Number.isFinite(v) || v < 1 || v > TASKS_MAX) throw new Error(`--tasks needs 1..${TASKS_MAX}`);
      a.tasks = v;
    } else if (arg === '--pull') {
      const v = argv[++i];
      if (v !== 'always' && v !== 'missing') throw new Error('--pull needs always or missing');
      a.pull = v;
    } else throw new Error(`unknown argument ${arg} (known: --json --tasks N --pull always|missing)`);
  }
  return a;
}

interface Row {
  readonly bench: 'executor';
  readonly system: 'shoal' | 'runc';
  readonly tasks: number;
  readonly pull: 'always' | 'missing';
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly prepare_p50_ms: number | null;
  readonly start_p50_ms: number | null;
}

function percentileOf(values: readonly number[], p: number): number {
  return round(percentile(sortedAsc(values), p), 1);
}

function bareRun(runc: Runc, bundle: string, id: string): Promise<void> {
  // stdio must not be pipes: with -d runc hands its stdio to the container, which keeps them open.
  return new Promise((resolve, reject) => {
    const child = spawn(runc.binary, ['--root', runc.root, 'run', '-d', '--bundle', bundle, id], { stdio: 'ignore', timeout: 30_000 });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc run -d ${id}: exit ${code}`))));
  });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const reg = await startRegistry();
  const cleanup = new ExecutorCleanup();
  const bareRoot = join(await cleanup.tempDir('bench-bare'), 'runc');
  const bare = new Runc(bareRoot);
  const bareIds: string[] = [];
  const controllers: TaskController[] = [];
  try {
    const image = await pushTestImage(reg, await testImageLayer(), 'shoal/bench');
    const images = await cleanup.imageStore();
    await images.pull(image);
    const ex = await cleanup.executor({ images, pullPolicy: args.pull });
    const spec = { ContainerSpec: { Image: image, Command: ['sleep', '3600'] } };
    const shoal: number[] = [];
    const prepare: number[] = [];
    const start: number[] = [];
    const runc: number[] = [];
    for (let i = 0; i < args.tasks; i++) {
      // shoal: assignment received → RUNNING.
      const t0 = performance.now();
      const t = ex.controller({ taskId: `bench-${i}`, spec });
      controllers.push(t);
      await t.prepare();
      const t1 = performance.now();
      await t.start();
      const t2 = performance.now();
      shoal.push(t2 - t0);
      prepare.push(t1 - t0);
      start.push(t2 - t1);

      // runc: a bundle prepared by the executor (untimed), then bare `runc run -d`.
      const b = ex.controller({ taskId: `bare-${i}`, spec });
      controllers.push(b);
      await b.prepare();
      const bundle = join(ex.opts.dataRoot, 'tasks', `bare-${i}`, 'bundle');
      const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { linux: { namespaces: { type: string; path?: string }[] } };
      config.linux.namespaces = config.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network' } : n));
      await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
      const r0 = performance.now();
      await bareRun(bare, bundle, `bare-${i}`);
      runc.push(performance.now() - r0);
      bareIds.push(`bare-${i}`);
    }
    const rows: Row[] = [
      { bench: 'executor', system: 'shoal', tasks: args.tasks, pull: args.pull, p50_ms: percentileOf(shoal, 50), p99_ms: percentileOf(shoal, 99), prepare_p50_ms: percentileOf(prepare, 50), start_p50_ms: percentileOf(start, 50) },
      { bench: 'executor', system: 'runc', tasks: args.tasks, pull: args.pull, p50_ms: percentileOf(runc, 50), p99_ms: percentileOf(runc, 99), prepare_p50_ms: null, start_p50_ms: null },
    ];
    if (args.json) {
      console.log(JSON.stringify(rows));
    } else {
      console.log(`task start latency, ${args.tasks} containers each, interleaved (assignment → RUNNING), pull policy ${args.pull}`);
      console.log('system  tasks   p50 ms   p99 ms   prepare p50   start p50');
      for (const r of rows) {
        console.log(
          `${r.system.padEnd(6)}  ${String(r.tasks).padStart(5)}  ${r.p50_ms.toFixed(1).padStart(7)}  ${r.p99_ms.toFixed(1).padStart(7)}  ${(r.prepare_p50_ms?.toFixed(1) ?? '-').padStart(12)}  ${(r.start_p50_ms?.toFixed(1) ?? '-').padStart(10)}`,
        );
      }
      console.log(`shoal p50 / runc p50 = ${((rows[0] as Row).p50_ms / (rows[1] as Row).p50_ms).toFixed(2)}`);
    }
  } finally {
    for (const id of bareIds) await bare.delete(id, true).catch(() => undefined);
    for (const t of controllers) await t.remove({ removeLogs: true }).catch((err: unknown) => console.error(String(err)));
    await cleanup.run();
    await reg.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
