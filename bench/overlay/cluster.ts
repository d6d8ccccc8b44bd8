// bench:overlay's end-to-end part: time until a new task receives VIP traffic, through the whole
// system — the manager's API, store, orchestrator, allocator, scheduler, dispatcher, the worker's
// agent and executor (runc), and the network views reaching every node's data plane.
//
// A `shoal lab` (1 manager + 2 workers, each a shoald in its own network namespace, the lab's
// registry seeded with busybox); an overlay network `benchvip`; a `client` task on it running a
// poller (busybox sh inside the container, `runc exec`): every ~5 ms an HTTP request to `web:8080`
// (our DNS, then the VIP), printing the answering task's hostname (= its task ID). This process
// stamps each line as it arrives. Samples:
//   create-to-vip  POST /services/create of `web` (1 replica, httpd) → the first answer from it
//   scale-to-vip   POST /services/{id}/update replicas N → N+1 → the first answer from the new task
// and, for each sample, the split at the task's RUNNING (Status.Timestamp of the worker's report,
// same host clock): *-to-running, and running-to-vip (manager: report → store → dispatcher →
// network views → data plane on every node). With 2 or 3 backends, a new task gets 1/N of the
// requests, so "first answer" lags its reachability by ~N polls (~10-15 ms).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';

import { runcRootOf } from '../../cli/daemon/worker/node-agent.js';
import { labDir, readState } from '../../cli/lab/state.js';
import { ensureCliBuilt } from '../../e2e/build-cli.js';
import type { EngineApi, TaskView } from '../vs-swarm/api.js';
import { filters } from '../vs-swarm/api.js';
import { ShoalSystem } from '../vs-swarm/shoal-system.js';
import { sleep, waitUntil } from '../vs-swarm/system.js';

export interface ClusterVipSamples {
  readonly nodes: number;
  readonly createToVipMs: number[];
  readonly createToRunningMs: number[];
  readonly scaleToVipMs: number[];
  readonly scaleToRunningMs: number[];
  /** From the task's RUNNING report to its first VIP answer (create and scale samples). */
  readonly runningToVipMs: number[];
}

const WAIT_MS = 60_000;
const POLL_ITERATIONS = 120_000; // the poller's bound: ~10 minutes at its pace
const SCALE_STEPS = 2; // 1 → 2 → 3 replicas per run
const SLOW_MS = 5_000;

/**
 * What the client's namespace holds, for a slow sample's log line: NAT and filter rules with
 * counters, neighbours, a name lookup from inside the container, conntrack entries to :8080.
 * (This is how the bridge-MAC change that lost DNS for ~30 s was found.)
 */
function clientNetns(runcRoot: string, containerId: string): string {
  const st = spawnSync('runc', ['--root', runcRoot, 'state', containerId], { encoding: 'utf8', timeout: 10_000 });
  const pid = (JSON.parse(st.stdout || '{}') as { pid?: number }).pid;
  if (pid === undefined) return `(no state: ${st.stderr.trim()})`;
  const inNs = (argv: string[]): string => (spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, ...argv], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '').trim();
  const lookup = (spawnSync('runc', ['--root', runcRoot, 'exec', containerId, 'sh', '-c', 'nslookup web 2>&1 | tail -3'], { encoding: 'utf8', timeout: 20_000 }).stdout ?? '').trim();
  return [
    inNs(['iptables', '-t', 'nat', '-L', '-v', '-n', '-x']),
    inNs(['iptables', '-t', 'filter', '-L', '-v', '-n', '-x']),
    inNs(['ip', 'neigh', 'show']),
    `nslookup: ${lookup}`,
    `conntrack: ${inNs(['conntrack', '-L']).split('\n').filter((l) => l.includes('dport=8080')).slice(0, 20).join('\n')}`,
  ].join('\n');
}

/** Every ~5 ms: one request to web:8080 through DNS and the VIP; prints the answer's last line. */
const POLLER = String.raw`i=0
while [ $i -lt ${POLL_ITERATIONS} ]; do
  r=$(printf 'GET /hostname HTTP/1.0\r\n\r\n' | nc -w 1 web 8080 2>/dev/null | tail -1)
  if [ -n "$r" ]; then echo "$r"; else echo miss; fi
  usleep 5000
  i=$((i+1))
done`;

interface Hit {
  readonly atMs: number;
  readonly taskId: string;
}

class Poller {
  private readonly waiters: { pred: (h: Hit) => boolean; resolve: (h: Hit) => void }[] = [];
  readonly seen = new Set<string>();
  /** Answers per task since the last nextNew (for a slow sample's log). */
  readonly recent = new Map<string, number>();
  /** When polls got no answer since the last nextNew. */
  readonly misses: number[] = [];

  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const hit = { atMs: Date.now(), taskId: line.trim() };
      if (hit.taskId === 'miss') this.misses.push(hit.atMs);
      if (!/^[a-z0-9]{10,}$/.test(hit.taskId)) return;
      for (const w of [...this.waiters]) {
        if (w.pred(hit)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(hit);
        }
      }
      this.seen.add(hit.taskId);
      this.recent.set(hit.taskId, (this.recent.get(hit.taskId) ?? 0) + 1);
    });
  }

  /** The first answer from a task never seen before (bounded). */
  nextNew(what: string): Promise<Hit> {
    this.recent.clear();
    this.misses.length = 0;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no VIP answer from a new task within ${WAIT_MS} ms (${what})`)), WAIT_MS);
      this.waiters.push({
        pred: (h) => !this.seen.has(h.taskId),
        resolve: (h) => {
          clearTimeout(timer);
          resolve(h);
        },
      });
    });
  }
}

async function runningAt(api: EngineApi, taskId: string): Promise<number> {
  const t = await api.json<TaskView & { Status?: { State?: string; Timestamp?: string } }>('GET', `/tasks/${taskId}`);
  const at = Date.parse(t.Status?.Timestamp ?? '');
  if (t.Status?.State !== 'running' || !Number.isFinite(at)) throw new Error(`task ${taskId} is ${t.Status?.State ?? '?'}, not running`);
  return at;
}

async function runningTasks(api: EngineApi, service: string): Promise<TaskView[]> {
  const tasks = await api.json<TaskView[]>('GET', `/tasks?${filters({ service: [service], 'desired-state': ['running'] })}`);
  return tasks.filter((t) => t.Status?.State === 'running');
}

export async function clusterToVip(runs: number, log: (line: string) => void): Promise<ClusterVipSamples> {
  const labRoot = await mkdtemp(join(tmpdir(), 'shoal-bench-overlay-'));
  const labName = `bov${process.pid}`;
  let sys: ShoalSystem | undefined;
  let poller: ChildProcess | undefined;
  let slowSamples = 0;
  const out: ClusterVipSamples = { nodes: 3, createToVipMs: [], createToRunningMs: [], scaleToVipMs: [], scaleToRunningMs: [], runningToVipMs: [] };
  try {
    ensureCliBuilt(); // bin/shoal runs dist/: compiled from the sources when older
    log('cluster: lab up (1 manager + 2 workers)…');
    sys = await ShoalSystem.up(labRoot, labName, 1, 2);
    const state = readState(labDir(labRoot, labName))!;
    const api = sys.api(sys.hosts[0]!);
    const image = sys.image;
    const { Id: networkId } = await api.json<{ Id: string }>('POST', '/networks/create', { Name: 'benchvip', Driver: 'overlay', CheckDuplicate: true });
    // Every node pulls the image once, so that no sample includes a pull.
    await api.json('POST', '/services/create', { Name: 'warm', TaskTemplate: { ContainerSpec: { Image: image, Command: ['true'] }, RestartPolicy: { Condition: 'none' } }, Mode: { Global: {} } });
    await waitUntil('the image on every node', WAIT_MS, 200, async () => {
      const tasks = await api.json<TaskView[]>('GET', `/tasks?${filters({ service: ['warm'] })}`);
      return tasks.length === 3 && tasks.every((t) => t.Status?.State === 'complete') ? true : undefined;
    });
    await api.json('DELETE', '/services/warm');
    await api.json('POST', '/services/create', {
      Name: 'client',
      TaskTemplate: { ContainerSpec: { Image: image, Command: ['sleep', '3600'] }, Networks: [{ Target: 'benchvip' }] },
      Mode: { Replicated: { Replicas: 1 } },
    });
    const [client] = await waitUntil('the client task', WAIT_MS, 200, async () => {
      const r = await runningTasks(api, 'client');
      return r.length === 1 ? r : undefined;
    });
    const nodes = await api.json<{ ID: string; Description?: { Hostname?: string } }[]>('GET', '/nodes');
    const hostname = nodes.find((n) => n.ID === client!.NodeID)?.Description?.Hostname;
    const host = state.hosts.find((h) => h.name === hostname);
    if (host === undefined) throw new Error(`the client's node ${hostname ?? client!.NodeID} is not a lab host`);
    const runcRoot = runcRootOf(host.dataRoot);
    poller = spawn('runc', ['--root', runcRoot, 'exec', client!.ID, 'sh', '-c', POLLER], { stdio: ['ignore', 'pipe', 'ignore'] });
    const hits = new Poller(poller);
    // A sample slower than SLOW_MS logs what the client's namespace holds then (VIP rules, neighbours).
    const slow = <T>(p: Promise<T>, what: string): Promise<T> => {
      const startedAt = Date.now();
      const timer = setTimeout(() => {
        slowSamples++;
        const sandboxes = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.includes(`-n${networkId.slice(0, 12)}`));
        const peers = sandboxes.map((n) => `${n}: ${spawnSync('ip', ['-n', n, 'neigh', 'show', 'dev', 'vxlan0'], { encoding: 'utf8' }).stdout.trim().split('\n').length} neighbours; ${spawnSync('ip', ['-n', n, '-o', 'link', 'show', 'master', 'br0'], { encoding: 'utf8' }).stdout.trim().split('\n').length} bridge ports`);
        log(`cluster: ${what} slower than ${SLOW_MS} ms; answers since: ${JSON.stringify([...hits.recent])}; misses at +ms: ${JSON.stringify(hits.misses.map((m) => m - startedAt))}; client namespace:\n${clientNetns(runcRoot, client!.ID)}\n${peers.join('\n')}`);
      }, SLOW_MS);
      return p.finally(() => clearTimeout(timer));
    };

    for (let run = 0; run < runs; run++) {
      const created = hits.nextNew(`create, run ${run + 1}`);
      const t0 = Date.now();
      const svc = await api.json<{ ID: string }>('POST', '/services/create', {
        Name: 'web',
        TaskTemplate: { ContainerSpec: { Image: image, Command: ['httpd', '-f', '-p', '8080', '-h', '/etc'] }, Networks: [{ Target: 'benchvip' }] },
        Mode: { Replicated: { Replicas: 1 } },
      });
      const first = await slow(created, `create, run ${run + 1}`);
      const running = await runningAt(api, first.taskId);
      out.createToVipMs.push(first.atMs - t0);
      out.createToRunningMs.push(running - t0);
      out.runningToVipMs.push(first.atMs - running);
      for (let step = 0; step < SCALE_STEPS; step++) {
        const cur = await api.json<{ Version: { Index: number }; Spec: Record<string, unknown> }>('GET', `/services/${svc.ID}`);
        const scaled = hits.nextNew(`scale to ${step + 2}, run ${run + 1}`);
        const t1 = Date.now();
        await api.json('POST', `/services/${svc.ID}/update?version=${cur.Version.Index}`, { ...cur.Spec, Mode: { Replicated: { Replicas: step + 2 } } });
        const hit = await slow(scaled, `scale to ${step + 2}, run ${run + 1}`);
        const at = await runningAt(api, hit.taskId);
        out.scaleToVipMs.push(hit.atMs - t1);
        out.scaleToRunningMs.push(at - t1);
        out.runningToVipMs.push(hit.atMs - at);
      }
      await api.json('DELETE', `/services/${svc.ID}`);
      // Its tasks stop (a new `web` gets new task IDs anyway: samples wait for an ID never seen).
      await waitUntil('web stopped', 20_000, 200, async () => {
        const left = await api.json<TaskView[]>('GET', `/tasks?${filters({ service: [svc.ID] })}`);
        return left.every((t) => t.Status?.State !== 'running') ? true : undefined;
      }).catch(() => sleep(2_000));
      log(`cluster: run ${run + 1}/${runs}: create→vip ${out.createToVipMs.at(-1)} ms, scale→vip ${out.scaleToVipMs.slice(-SCALE_STEPS).join(', ')} ms`);
    }
  } finally {
    if (slowSamples > 0 && process.env['SHOAL_BENCH_KEEP_LOGS'] !== undefined) {
      // The daemons' logs of a run with slow samples, for a look at what the data plane did.
      const keep = process.env['SHOAL_BENCH_KEEP_LOGS'];
      for (const h of readState(labDir(labRoot, labName))?.hosts ?? []) spawnSync('cp', [h.logFile, join(keep, `${h.name}.log`)]);
      log(`cluster: daemon logs kept in ${keep}`);
    }
    poller?.kill('SIGKILL');
    await sys?.down();
    await rm(labRoot, { recursive: true, force: true });
  }
  return out;
}
