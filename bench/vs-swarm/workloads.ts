// The workloads, written once against the Docker Engine API and run on each system in turn.
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { round, timedConcurrent } from '../stats.js';
import { ApiError, filters, type EngineApi, type NodeView, type TaskView } from './api.js';
import { daemonPssKb, processFootprints, sumFootprints } from './memory.js';
import { latencyFigures, type Row } from './report.js';
import { type BenchHost, type SystemUnderTest, sleep, waitUntil } from './system.js';

export interface Sizes {
  readonly startTrials: number;
  readonly converge: readonly [number, number];
  readonly configWrites: number;
  /** Config creates (and removes) before the measured writes, not measured: see writesAndReads. */
  readonly warmupWrites: number;
  readonly serviceWrites: number;
  readonly readsRepeat: number;
  readonly failoverTrials: number;
  readonly rescheduleTrials: number;
}

export const FULL: Sizes = { startTrials: 10, converge: [50, 150], configWrites: 1000, warmupWrites: 500, serviceWrites: 200, readsRepeat: 20, failoverTrials: 5, rescheduleTrials: 3 };
export const QUICK: Sizes = { startTrials: 3, converge: [10, 20], configWrites: 100, warmupWrites: 50, serviceWrites: 20, readsRepeat: 5, failoverTrials: 1, rescheduleTrials: 1 };

let unique = 0;
function uniqueName(prefix: string): string {
  unique += 1;
  return `${prefix}${Date.now().toString(36)}${unique}`;
}

function serviceSpec(name: string, image: string, replicas: number): unknown {
  return {
    Name: name,
    TaskTemplate: { ContainerSpec: { Image: image, Args: ['/bin/sleep', '86400'] }, RestartPolicy: { Condition: 'any', Delay: 1_000_000_000 } },
    Mode: { Replicated: { Replicas: replicas } },
  };
}

async function tasksOf(api: EngineApi, serviceId: string): Promise<TaskView[]> {
  return api.json<TaskView[]>('GET', `/tasks?${filters({ service: [serviceId] })}`);
}

function running(tasks: readonly TaskView[], exceptNode?: string): number {
  return tasks.filter((t) => t.Status?.State === 'running' && t.DesiredState === 'running' && t.NodeID !== exceptNode).length;
}

async function createService(api: EngineApi, spec: unknown): Promise<string> {
  return (await api.json<{ ID: string }>('POST', '/services/create', spec)).ID;
}

async function removeService(api: EngineApi, id: string, limitMs = 180_000): Promise<void> {
  await api.json('DELETE', `/services/${id}`);
  // Wait until its tasks are gone, so the next workload starts from a quiet node.
  // (Docker answers 404 for a task filter on a service that no longer exists.)
  await waitUntil(`the tasks of service ${id} to go`, limitMs, 250, async () => {
    try {
      return (await tasksOf(api, id)).length === 0 ? true : undefined;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return true;
      throw err;
    }
  });
}

async function waitRunning(api: EngineApi, serviceId: string, want: number, limitMs: number, everyMs: number, exceptNode?: string): Promise<void> {
  try {
    await waitUntil(`${want} running tasks of ${serviceId}`, limitMs, everyMs, async () => (running(await tasksOf(api, serviceId), exceptNode) >= want ? true : undefined));
  } catch (err) {
    // Say what the tasks were doing: the state and error of the last few.
    const tasks = await tasksOf(api, serviceId).catch(() => []);
    const states = tasks.slice(-3).map((t) => `${t.Status?.State ?? '?'}${t.Status?.Err === undefined || t.Status.Err === '' ? '' : ` (${t.Status.Err})`}`);
    throw new Error(`${(err as Error).message}; ${tasks.length} tasks, last: ${states.join('; ')}`);
  }
}

/** 1. create a 1-replica service, time until its task is running. */
export async function taskStart(sys: SystemUnderTest, host: BenchHost, trials: number): Promise<Row> {
  const api = sys.api(host);
  const times: number[] = [];
  for (let i = 0; i < trials; i++) {
    const t0 = performance.now();
    const id = await createService(api, serviceSpec(uniqueName('start'), sys.image, 1));
    await waitRunning(api, id, 1, 60_000, 10);
    times.push(performance.now() - t0);
    await removeService(api, id);
  }
  const f = latencyFigures(times);
  return { bench: 'task-start', system: sys.name, trials, p50_ms: f.p50_ms, p99_ms: f.p99_ms };
}

/** The floor beside task start: bare `runc run -d` of a busybox bundle, `trials` times. */
export async function runcFloor(trials: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'vs-runc-'));
  const root = join(dir, 'root');
  const times: number[] = [];
  const ids: string[] = [];
  const run = (args: readonly string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const c = spawn('runc', [...args], { stdio: 'ignore', cwd: dir, timeout: 30_000 });
      c.on('error', reject);
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc ${args.join(' ')}: exit ${code}`))));
    });
  try {
    const rootfs = join(dir, 'bundle', 'rootfs');
    await mkdir(join(rootfs, 'bin'), { recursive: true });
    await cp('/bin/busybox', join(rootfs, 'bin', 'busybox'), { recursive: true });
    for (const d of ['proc', 'sys', 'dev', 'tmp']) await mkdir(join(rootfs, d), { recursive: true });
    await run(['spec', '--bundle', join(dir, 'bundle')]);
    const configPath = join(dir, 'bundle', 'config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { process: { args: string[]; terminal: boolean }; root: { readonly: boolean } };
    config.process.args = ['/bin/busybox', 'sleep', '86400'];
    config.process.terminal = false;
    await writeFile(configPath, JSON.stringify(config));
    for (let i = 0; i < trials; i++) {
      const id = uniqueName('vsfloor');
      const t0 = performance.now();
      await run(['--root', root, 'run', '-d', '--bundle', join(dir, 'bundle'), id]);
      times.push(performance.now() - t0);
      ids.push(id);
    }
  } finally {
    for (const id of ids) await run(['--root', root, 'delete', '--force', id]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  const f = latencyFigures(times);
  return { bench: 'task-start', system: 'runc', trials, p50_ms: f.p50_ms, p99_ms: f.p99_ms };
}

function memoryRow(sys: SystemUnderTest, tasks: number, fp: { pssKb: number; rssKb: number; processes: number }, daemonKb: number, idlePssKb?: number): Row {
  const pss = round(fp.pssKb / 1024, 1);
  return {
    bench: 'memory',
    system: sys.name,
    tasks,
    pss_mb: pss,
    rss_mb: round(fp.rssKb / 1024, 1),
    processes: fp.processes,
    daemon_pss_mb: round(daemonKb / 1024, 1),
    pss_per_task_mb: idlePssKb === undefined || tasks === 0 ? null : round((fp.pssKb - idlePssKb) / 1024 / tasks, 2),
  };
}

/**
 * Waits until the node has no tasks at all. A service filter does not do: both systems answer a
 * filter on a deleted service at once (Shoal with [], Docker with 404) while its tasks are still
 * stopping, so "idle" would count the containers of earlier workloads in their stop grace period.
 */
async function waitNoTasks(api: EngineApi, limitMs = 120_000): Promise<void> {
  await waitUntil('every task to be gone', limitMs, 250, async () => ((await api.json<TaskView[]>('GET', '/tasks')).length === 0 ? true : undefined));
}

/** 2 and 3. One service 0 → a → b replicas on one node; memory idle, at a and at b. */
export async function convergeAndMemory(sys: SystemUnderTest, host: BenchHost, steps: readonly [number, number]): Promise<Row[]> {
  const api = sys.api(host);
  const rows: Row[] = [];
  await waitNoTasks(api);
  await sleep(2_000);
  // The processes at rest with no tasks are the daemons; the rest, later, are per-task helpers.
  const idleParts = await processFootprints([host.netns]);
  const daemons = new Set(idleParts.map((p) => p.pid));
  const idle = sumFootprints(idleParts);
  rows.push(memoryRow(sys, 0, idle, idle.pssKb));
  const measure = async (tasks: number): Promise<Row> => {
    const parts = await processFootprints([host.netns]);
    return memoryRow(sys, tasks, sumFootprints(parts), daemonPssKb(parts, daemons), idle.pssKb);
  };
  const name = uniqueName('conv');
  let t0 = performance.now();
  const id = await createService(api, serviceSpec(name, sys.image, steps[0]));
  await waitRunning(api, id, steps[0], 600_000, 200);
  let seconds = (performance.now() - t0) / 1000;
  rows.push({ bench: 'converge', system: sys.name, from: 0, tasks: steps[0], seconds: round(seconds, 2), tasks_per_s: round(steps[0] / seconds, 2) });
  await sleep(2_000);
  rows.push(await measure(steps[0]));
  const svc = await api.json<{ Version: { Index: number }; Spec: Record<string, unknown> }>('GET', `/services/${id}`);
  t0 = performance.now();
  await api.json('POST', `/services/${id}/update?version=${svc.Version.Index}`, { ...svc.Spec, Mode: { Replicated: { Replicas: steps[1] } } });
  await waitRunning(api, id, steps[1], 900_000, 200);
  seconds = (performance.now() - t0) / 1000;
  rows.push({ bench: 'converge', system: sys.name, from: steps[0], tasks: steps[1], seconds: round(seconds, 2), tasks_per_s: round((steps[1] - steps[0]) / seconds, 2) });
  await sleep(2_000);
  rows.push(await measure(steps[1]));
  await removeService(api, id, 600_000);
  return rows;
}


function writeRow(bench: 'config-writes' | 'service-writes', sys: SystemUnderTest, ops: number, concurrency: number, r: { ms: number[]; seconds: number }): Row {
  const f = latencyFigures(r.ms);
  return { bench, system: sys.name, ops, concurrency, seconds: round(r.seconds, 2), ops_per_s: round(ops / r.seconds, 1), p50_ms: f.p50_ms, p99_ms: f.p99_ms };
}

/**
 * 4 and 5. Config and service writes at concurrency 1 and 16; reads with `serviceWrites` services.
 * Both systems first get the same `warmupWrites` config creates and removes, not measured: run
 * with `--only` the writes would otherwise start seconds after the daemon, and measure a
 * JavaScript daemon's compiler warming up (and the swarm's own start-up work) rather than its
 * write path (in a full run the earlier workloads have warmed it already).
 */
export async function writesAndReads(sys: SystemUnderTest, host: BenchHost, sizes: Sizes): Promise<Row[]> {
  const api = sys.api(host);
  const rows: Row[] = [];
  const warm = uniqueName('warm-');
  const warmIds: string[] = [];
  await timedConcurrent(sizes.warmupWrites, 16, async (i) => {
    warmIds.push((await api.json<{ ID: string }>('POST', '/configs/create', { Name: `${warm}-${i}`, Data: Buffer.from(`value ${i}`).toString('base64') })).ID);
  });
  for (const id of warmIds) await api.json('DELETE', `/configs/${id}`);
  for (const c of [1, 16]) {
    const prefix = uniqueName(`cfg${c}-`);
    const r = await timedConcurrent(sizes.configWrites, c, async (i) => {
      await api.json('POST', '/configs/create', { Name: `${prefix}-${i}`, Data: Buffer.from(`value ${i}`).toString('base64') });
    });
    rows.push(writeRow('config-writes', sys, sizes.configWrites, c, r));
  }
  const serviceIds: string[][] = [];
  for (const c of [1, 16]) {
    const prefix = uniqueName(`sw${c}-`);
    const ids: string[] = [];
    const r = await timedConcurrent(sizes.serviceWrites, c, async (i) => {
      ids.push(await createService(api, serviceSpec(`${prefix}-${i}`, sys.image, 0)));
    });
    serviceIds.push(ids);
    rows.push(writeRow('service-writes', sys, sizes.serviceWrites, c, r));
    if (c === 1) rows.push(...(await reads(sys, host, sizes)));
  }
  for (const id of serviceIds.flat()) await api.json('DELETE', `/services/${id}`);
  return rows;
}

async function reads(sys: SystemUnderTest, host: BenchHost, sizes: Sizes): Promise<Row[]> {
  const api = sys.api(host);
  const apiMs: number[] = [];
  for (let i = 0; i < sizes.readsRepeat; i++) {
    const t0 = performance.now();
    const list = await api.json<unknown[]>('GET', '/services?status=true');
    apiMs.push(performance.now() - t0);
    if (list.length < sizes.serviceWrites) throw new Error(`GET /services returned ${list.length} services, expected ≥ ${sizes.serviceWrites}`);
  }
  const cliMs: number[] = [];
  for (let i = 0; i < Math.min(5, sizes.readsRepeat); i++) {
    const t0 = performance.now();
    await sys.cliServiceLs(host);
    cliMs.push(performance.now() - t0);
  }
  const a = latencyFigures(apiMs);
  const c = latencyFigures(cliMs);
  return [
    { bench: 'reads', system: sys.name, client: 'api', services: sizes.serviceWrites, p50_ms: a.p50_ms, p99_ms: a.p99_ms },
    { bench: 'reads', system: sys.name, client: 'cli', services: sizes.serviceWrites, p50_ms: c.p50_ms, p99_ms: c.p99_ms },
  ];
}

async function nodesFrom(sys: SystemUnderTest, hosts: readonly BenchHost[]): Promise<{ host: BenchHost; nodes: NodeView[] } | undefined> {
  for (const h of hosts) {
    try {
      return { host: h, nodes: await sys.api(h).json<NodeView[]>('GET', '/nodes') };
    } catch {
      /* try the next */
    }
  }
  return undefined;
}

function hostOfNode(sys: SystemUnderTest, node: NodeView): BenchHost | undefined {
  const addr = node.Status?.Addr ?? node.ManagerStatus?.Addr?.split(':')[0];
  return sys.hosts.find((h) => h.address === addr || h.name === node.Description?.Hostname);
}

/**
 * Waits until every manager answers GET /nodes with the same leader, every node ready and every
 * manager reachable (a restarted manager must know the leader too: writes sent to it are forwarded).
 */
async function waitHealthy(sys: SystemUnderTest, limitMs = 120_000): Promise<void> {
  const managers = sys.hosts.filter((h) => h.role === 'manager');
  await waitUntil('every manager to agree on the leader, every node ready', limitMs, 250, async () => {
    const leaders = new Set<string>();
    for (const m of managers) {
      const nodes = await sys.api(m).json<NodeView[]>('GET', '/nodes');
      const ok = nodes.length >= sys.hosts.length && nodes.every((n) => n.Status?.State === 'ready' && (n.ManagerStatus === undefined || n.ManagerStatus.Reachability === 'reachable'));
      const leader = nodes.find((n) => n.ManagerStatus?.Leader === true);
      if (!ok || leader === undefined) return undefined;
      leaders.add(leader.ID);
    }
    return leaders.size === 1 ? true : undefined;
  });
}

/** 6. SIGKILL the leader's daemon: time to a new leader, and to `replicas` running tasks again. */
export async function failover(sys: SystemUnderTest, trials: number, replicas = 3): Promise<Row> {
  const managers = sys.hosts.filter((h) => h.role === 'manager');
  await waitHealthy(sys);
  const first = managers[0] as BenchHost;
  const serviceId = await createService(sys.api(first), serviceSpec(uniqueName('fo'), sys.image, replicas));
  const leaderMs: number[] = [];
  const tasksMs: number[] = [];
  try {
    await waitRunning(sys.api(first), serviceId, replicas, 120_000, 200);
    for (let t = 0; t < trials; t++) {
      const view = await nodesFrom(sys, managers);
      const leaderNode = view?.nodes.find((n) => n.ManagerStatus?.Leader === true);
      const leaderHost = leaderNode === undefined ? undefined : hostOfNode(sys, leaderNode);
      if (leaderNode === undefined || leaderHost === undefined) throw new Error('no leader to kill');
      const survivors = managers.filter((h) => h !== leaderHost);
      const t0 = performance.now();
      await sys.kill(leaderHost);
      await waitUntil('a new leader', 120_000, 50, async () => {
        const v = await nodesFrom(sys, survivors);
        return v?.nodes.some((n) => n.ManagerStatus?.Leader === true && n.ID !== leaderNode.ID) === true ? true : undefined;
      });
      leaderMs.push(performance.now() - t0);
      await waitUntil(`${replicas} running tasks off the dead leader`, 180_000, 200, async () => {
        const v = await nodesFrom(sys, survivors);
        if (v === undefined) return undefined;
        return running(await tasksOf(sys.api(v.host), serviceId), leaderNode.ID) >= replicas ? true : undefined;
      });
      tasksMs.push(performance.now() - t0);
      await sys.start(leaderHost);
      await waitHealthy(sys);
    }
  } finally {
    const v = await nodesFrom(sys, managers);
    if (v !== undefined) await sys.api(v.host).json('DELETE', `/services/${serviceId}`).catch(() => undefined);
  }
  const l = latencyFigures(leaderMs);
  const k = latencyFigures(tasksMs);
  return { bench: 'failover', system: sys.name, trials, managers: managers.length, p50_ms: l.p50_ms, max_ms: l.max_ms, tasks_p50_ms: k.p50_ms, tasks_max_ms: k.max_ms };
}

/** SIGKILL a worker's daemon: time until its tasks run elsewhere (a fresh service each trial). */
export async function reschedule(sys: SystemUnderTest, trials: number): Promise<Row> {
  const managers = sys.hosts.filter((h) => h.role === 'manager');
  const worker = sys.hosts.find((h) => h.role === 'worker');
  if (worker === undefined) throw new Error('reschedule needs a worker host');
  const replicas = sys.hosts.length * 2;
  const api = (): EngineApi => sys.api(managers[0] as BenchHost);
  const ms: number[] = [];
  for (let t = 0; t < trials; t++) {
    await waitHealthy(sys, 180_000);
    const serviceId = await createService(api(), serviceSpec(uniqueName('rs'), sys.image, replicas));
    let killed = false;
    try {
      await waitRunning(api(), serviceId, replicas, 180_000, 200);
      const nodes = await api().json<NodeView[]>('GET', '/nodes');
      const workerNode = nodes.find((n) => hostOfNode(sys, n) === worker);
      if (workerNode === undefined) throw new Error(`no node for ${worker.name}`);
      const onWorker = (await tasksOf(api(), serviceId)).filter((x) => x.NodeID === workerNode.ID && x.Status?.State === 'running').length;
      if (onWorker === 0) throw new Error(`no task of the service runs on ${worker.name}: the workload needs one there`);
      const t0 = performance.now();
      await sys.kill(worker);
      killed = true;
      await waitRunning(api(), serviceId, replicas, 300_000, 250, workerNode.ID);
      ms.push(performance.now() - t0);
    } finally {
      await api().json('DELETE', `/services/${serviceId}`).catch(() => undefined);
      if (killed) await sys.start(worker);
    }
  }
  await waitHealthy(sys, 180_000);
  const f = latencyFigures(ms);
  return { bench: 'reschedule', system: sys.name, trials, p50_ms: f.p50_ms, max_ms: f.max_ms };
}
