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
// all are removed. Rows: {bench:'executor', system, tasks, p50_ms, p99_ms, …}; the shoal rows also
// carry the per-task helpers' memory while all 2N shoal containers run: PSS (smaps_rollup) of every
// process of our PID namespace under a task's shim (the shim, and a runc still running beside its
// container), plus the shim launcher shared by them all, divided by the task count. The containers
// themselves (their own PID namespace) and the daemon are not counted.
import { spawn } from 'node:child_process';
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
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
  /** Per-task helper PSS (shims, their runc, the launcher's share), MiB; null for bare runc. */
  readonly pss_per_task_mb: number | null;
  /** Helper processes (launcher included) per task. */
  readonly helpers_per_task: number | null;
}

/** PSS (kB) of one process from /proc/PID/smaps_rollup; 0 when it is gone. */
async function pssKb(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const m = /^Pss:\s+(\d+) kB/m.exec(text);
  return m === null ? 0 : Number(m[1]);
}

/**
 * The helpers of these shims: each shim and its descendants in our PID namespace (a container's
 * processes have their own), plus `extra` (the launcher). Sums their PSS.
 */
async function helperFootprint(shimPids: readonly number[], extra: readonly number[]): Promise<{ pssKb: number; processes: number }> {
  const ourNs = await readlink('/proc/self/ns/pid');
  const parent = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
    const ns = await readlink(`/proc/${pid}/ns/pid`).catch(() => undefined);
    if (stat === undefined || ns !== ourNs) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    parent.set(pid, ppid);
  }
  const roots = new Set(shimPids);
  const helpers = new Set<number>(extra.filter((p) => parent.has(p)));
  for (const pid of parent.keys()) {
    // Bounded walk up the parent chain (a PID namespace's depth is far below this).
    let p: number | undefined = pid;
    for (let hops = 0; hops < 64 && p !== undefined && p > 1; hops++) {
      if (roots.has(p)) {
        helpers.add(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  let pss = 0;
  for (const pid of helpers) pss += await pssKb(pid);
  return { pssKb: pss, processes: helpers.size };
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
    // Memory of the per-task helpers while all 2N shoal containers run (the bare-runc bundles' idle
    // shims, prepared but never started, are left out: they are not running tasks).
    const shimPids: number[] = [];
    for (const [executor, prefix] of [[ex, 'bench-'], [exTag, 'tag-']] as const) {
      for (let i = 0; i < args.tasks; i++) {
        const text = await readFile(join(executor.opts.dataRoot, 'tasks', `${prefix}${i}`, 'shim.pid'), 'utf8').catch(() => '');
        if (Number(text.trim()) > 0) shimPids.push(Number(text.trim()));
      }
    }
    const launchers = [ex.launcher.pid, exTag.launcher.pid].filter((p): p is number => p !== undefined);
    const helpers = await helperFootprint(shimPids, launchers);
    const shoalTasks = 2 * args.tasks;
    const pssPerTask = round(helpers.pssKb / 1024 / shoalTasks, 3);
    const helpersPerTask = round(helpers.processes / shoalTasks, 2);
    const shoalRow = (ref: 'digest' | 'tag'): Row => {
      const x = series[ref];
      return { bench: 'executor', system: 'shoal', ref, tasks: args.tasks, pull: args.pull, p50_ms: percentileOf(x.total, 50), p99_ms: percentileOf(x.total, 99), prepare_p50_ms: percentileOf(x.prepare, 50), start_p50_ms: percentileOf(x.start, 50), pss_per_task_mb: pssPerTask, helpers_per_task: helpersPerTask };
    };
    const runcRow: Row = { bench: 'executor', system: 'runc', ref: null, tasks: args.tasks, pull: args.pull, p50_ms: percentileOf(runc, 50), p99_ms: percentileOf(runc, 99), prepare_p50_ms: null, start_p50_ms: null, pss_per_task_mb: null, helpers_per_task: null };
    const rows: Row[] = [shoalRow('digest'), shoalRow('tag'), runcRow];
    if (args.json) {
      console.log(JSON.stringify(rows));
    } else {
      console.log(`task start latency, ${args.tasks} containers each, interleaved (assignment → RUNNING), pull policy ${args.pull}`);
      console.log('system  ref      tasks   p50 ms   p99 ms   prepare p50   start p50   p50 / runc p50   helper PSS/task MiB   helpers/task');
      for (const r of rows) {
        console.log(
          `${r.system.padEnd(6)}  ${(r.ref ?? '-').padEnd(6)}  ${String(r.tasks).padStart(5)}  ${r.p50_ms.toFixed(1).padStart(7)}  ${r.p99_ms.toFixed(1).padStart(7)}  ${(r.prepare_p50_ms?.toFixed(1) ?? '-').padStart(12)}  ${(r.start_p50_ms?.toFixed(1) ?? '-').padStart(10)}  ${(r.p50_ms / runcRow.p50_ms).toFixed(2).padStart(15)}  ${(r.pss_per_task_mb?.toFixed(3) ?? '-').padStart(20)}  ${(r.helpers_per_task?.toFixed(2) ?? '-').padStart(13)}`,
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
