// `npm run bench:executor [-- --json] [-- --tasks N] [-- --pull always|missing]`
//
// Task start latency, side by side in one run, interleaved task by task:
//   shoal ref=digest — RuncExecutor: controller → prepare → start until RUNNING, the image pinned to
//           its manifest digest as `docker service create` sends it (present locally: no registry
//           round trip); prepare = image lookup, shim forked by the launcher (FIFOs, overlay mount),
//           user, /etc files, config.json; start = a `start` line to the shim, `runc run`, PID file.
//   shoal ref=tag — the same with a tag and no reuse of earlier answers (tagFreshMs 0): every
//           prepare asks the registry on loopback for the manifest, as Docker does for a tag.
//   runc  — bare `runc run -d` of a bundle the executor prepared (untimed), with runc making the
//           network namespace itself, until the command returns (the container runs).
// Every container stays up until the end (N containers running at once, as on a busy worker), then
// all are removed. Rows: {bench:'executor', system, tasks, p50_ms, p99_ms, …}.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Runc } from '../../worker/executor/runc.js';
import { ExecutorCleanup, testImageLayer } from '../../worker/executor/test-support.js';
import type { TaskController } from '../../worker/executor/types.js';
import { pushImage, startRegistry } from '../../worker/testing/registry.js';
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
  readonly ref: 'digest' | 'tag' | null;
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
    const pushed = await pushImage(reg, { repository: 'shoal/bench', tag: 'latest', layers: [await testImageLayer()], config: { Cmd: ['sh'] } });
    const tagged = `${reg.host}/shoal/bench:latest`;
    const pinned = `${reg.host}/shoal/bench@${pushed.manifestDigest}`;
    const images = await cleanup.imageStore();
    await images.pull(tagged);
    await images.pull(pinned);
    const ex = await cleanup.executor({ images, pullPolicy: args.pull });
    const exTag = await cleanup.executor({ images, pullPolicy: args.pull, tagFreshMs: 0 });
    const spec = (image: string): { ContainerSpec: { Image: string; Command: string[] } } => ({ ContainerSpec: { Image: image, Command: ['sleep', '3600'] } });
    const series = { digest: { total: [] as number[], prepare: [] as number[], start: [] as number[] }, tag: { total: [] as number[], prepare: [] as number[], start: [] as number[] } };
    const runc: number[] = [];
    const shoalRun = async (executor: typeof ex, taskId: string, image: string, into: (typeof series)['digest']): Promise<void> => {
      // shoal: assignment received → RUNNING.
      const t0 = performance.now();
      const t = executor.controller({ taskId, spec: spec(image) });
      controllers.push(t);
      await t.prepare();
      const t1 = performance.now();
      await t.start();
      const t2 = performance.now();
      into.total.push(t2 - t0);
      into.prepare.push(t1 - t0);
      into.start.push(t2 - t1);
    };
    for (let i = 0; i < args.tasks; i++) {
      await shoalRun(ex, `bench-${i}`, pinned, series.digest);
      await shoalRun(exTag, `tag-${i}`, tagged, series.tag);

      // runc: a bundle prepared by the executor (untimed), then bare `runc run -d`.
      const b = ex.controller({ taskId: `bare-${i}`, spec: spec(pinned) });
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
    const shoalRow = (ref: 'digest' | 'tag'): Row => {
      const x = series[ref];
      return { bench: 'executor', system: 'shoal', ref, tasks: args.tasks, pull: args.pull, p50_ms: percentileOf(x.total, 50), p99_ms: percentileOf(x.total, 99), prepare_p50_ms: percentileOf(x.prepare, 50), start_p50_ms: percentileOf(x.start, 50) };
    };
    const runcRow: Row = { bench: 'executor', system: 'runc', ref: null, tasks: args.tasks, pull: args.pull, p50_ms: percentileOf(runc, 50), p99_ms: percentileOf(runc, 99), prepare_p50_ms: null, start_p50_ms: null };
    const rows: Row[] = [shoalRow('digest'), shoalRow('tag'), runcRow];
    if (args.json) {
      console.log(JSON.stringify(rows));
    } else {
      console.log(`task start latency, ${args.tasks} containers each, interleaved (assignment → RUNNING), pull policy ${args.pull}`);
      console.log('system  ref      tasks   p50 ms   p99 ms   prepare p50   start p50   p50 / runc p50');
      for (const r of rows) {
        console.log(
          `${r.system.padEnd(6)}  ${(r.ref ?? '-').padEnd(6)}  ${String(r.tasks).padStart(5)}  ${r.p50_ms.toFixed(1).padStart(7)}  ${r.p99_ms.toFixed(1).padStart(7)}  ${(r.prepare_p50_ms?.toFixed(1) ?? '-').padStart(12)}  ${(r.start_p50_ms?.toFixed(1) ?? '-').padStart(10)}  ${(r.p50_ms / runcRow.p50_ms).toFixed(2).padStart(15)}`,
        );
      }
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
