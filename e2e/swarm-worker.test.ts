// Workers on a real lab: `lab up` with one manager and two workers forms the swarm (the workers join
// with the worker token and run the agent over runc); `docker node ls` shows three Ready nodes; a
// `busybox sleep 600` service of 2 replicas created with the real docker CLI reaches 2 Running
// tasks, and runc (with the executors' roots on the lab hosts) lists the two containers running on
// the hosts `service ps` names; scaled to 3, the manager (which runs an agent too) gets one;
// `docker service rm` removes them; `lab down` with a service still running leaves no container
// process, mount or task namespace behind. The lab is always taken down.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabState } from '../cli/lab/state.js';
import { runcRootOf } from '../cli/daemon/worker/node-agent.js';
import { ensureCliBuilt } from './build-cli.js';
import { ok, pollUntil } from './support.js';

const REPO = join(import.meta.dirname, '..');
const SHOAL = [process.execPath, join(REPO, 'bin', 'shoal')];
const BUILD_TIMEOUT_MS = 240_000;
const POLL_MS = 250;
const WAIT_LIMIT_MS = 30_000;

type Host = LabState['hosts'][number];

let root: string;
let dockerConfig: string;

function shoal(args: readonly string[]): SpawnSyncReturns<string> {
  const [node, ...pre] = SHOAL as [string, ...string[]];
  return spawnSync(node, [...pre, ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, SHOAL_LAB_ROOT: root }, timeout: 90_000 });
}

function docker(host: Host, args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync('docker', ['-H', `unix://${host.socket}`, ...args], { encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: dockerConfig }, timeout: 30_000 });
}


/** Polls `probe` until it returns a value (bounded); see pollUntil. */
function waitFor<T>(what: string, probe: () => T | undefined): Promise<T> {
  return pollUntil(what, probe, WAIT_LIMIT_MS, POLL_MS);
}

interface RuncContainer {
  readonly id: string;
  readonly pid: number;
  readonly status: string;
}

/** `runc list` with the executor's root on a lab host (no root directory yet: none). */
function runcList(host: Host): RuncContainer[] {
  const r = spawnSync('runc', ['--root', runcRootOf(host.dataRoot), 'list', '-f', 'json'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return [];
  const list = JSON.parse(r.stdout.trim() === '' ? 'null' : r.stdout) as RuncContainer[] | null;
  return list ?? [];
}

function runningContainers(hosts: readonly Host[]): RuncContainer[] {
  return hosts.flatMap((h) => runcList(h)).filter((c) => c.status === 'running');
}

/**
 * Whether the process still runs. A zombie (state Z) has exited: it only waits to be reaped, and
 * in this sandbox PID 1 does not reap the orphans of a killed shim.
 */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-worker-'));
  dockerConfig = await mkdtemp(join(tmpdir(), 'shoal-e2e-docker-'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(dockerConfig, { recursive: true, force: true });
});

describe('workers on a lab run a service in real runc containers', () => {
  const name = `e2w-${process.pid}`;
  let state: LabState | undefined;
  const hosts = (): Host[] => state!.hosts;
  const manager = (): Host => hosts()[0]!;

  beforeAll(() => {
    const up = shoal(['lab', 'up', '--name', name, '--managers', '1', '--workers', '2']);
    expect(up.status, up.stderr + up.stdout).toBe(0);
    expect(up.stdout).toContain('2 of 2 workers joined');
    state = JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as LabState;
  }, 120_000);

  afterAll(() => {
    shoal(['lab', 'down', '--name', name]); // also when a test failed
  }, 60_000);

  it('docker node ls shows the manager and both workers Ready', async () => {
    const want = hosts()
      .map((h) => `${h.name} Ready`)
      .sort();
    await waitFor('three Ready nodes', () => {
      const got = ok(docker(manager(), ['node', 'ls', '--format', '{{.Hostname}} {{.Status}}'])).trim().split('\n').sort();
      return JSON.stringify(got) === JSON.stringify(want) ? got : undefined;
    });
    const info = JSON.parse(ok(docker(hosts()[1]!, ['info', '--format', '{{json .Swarm}}']))) as { LocalNodeState: string; ControlAvailable: boolean; NodeID: string };
    expect(info).toMatchObject({ LocalNodeState: 'active', ControlAvailable: false });
    expect(info.NodeID).toBe(state!.swarm?.nodeIds?.[hosts()[1]!.name]);
  }, 40_000);

  it('a busybox service of 2 replicas runs 2 runc containers; scaled to 3 the manager runs one; service rm removes them', async () => {
    ok(docker(manager(), ['service', 'create', '--detach', '--name', 'w', '--replicas', '2', 'busybox', 'sleep', '600']));
    const tasks = await waitFor('2 Running tasks in docker service ps', () => {
      const lines = ok(docker(manager(), ['service', 'ps', 'w', '--format', '{{.Node}}|{{.CurrentState}}'])).trim().split('\n');
      const rows = lines.map((l) => l.split('|') as [string, string]);
      return rows.length === 2 && rows.every(([, st]) => st.startsWith('Running')) ? rows : undefined;
    });
    const running = await waitFor('2 running runc containers on the lab hosts', () => {
      const cs = runningContainers(hosts());
      return cs.length === 2 ? cs : undefined;
    });
    for (const c of running) expect(alive(c.pid)).toBe(true);
    // Each Running task's container is on the host docker service ps names.
    const perHost = (n: string): number => runningContainers(hosts().filter((h) => h.name === n)).length;
    const byNode = new Map<string, number>();
    for (const [node] of tasks) byNode.set(node, (byNode.get(node) ?? 0) + 1);
    for (const [node, count] of byNode) expect(perHost(node), `containers on ${node}`).toBe(count);

    // The manager runs an agent too: a third replica spreads onto it.
    ok(docker(manager(), ['service', 'scale', '--detach', 'w=3']));
    await waitFor('a container on each host', () => (hosts().every((h) => perHost(h.name) === 1) ? true : undefined));
    running.push(...runningContainers(hosts()).filter((c) => !running.some((r) => r.id === c.id)));

    ok(docker(manager(), ['service', 'rm', 'w']));
    await waitFor('no runc container left', () => (hosts().every((h) => runcList(h).length === 0) ? true : undefined));
    for (const c of running) expect(alive(c.pid)).toBe(false);
  }, 70_000);

  it('lab down with a service running, one daemon SIGKILLed, leaves no container, mount or task namespace', async () => {
    ok(docker(manager(), ['service', 'create', '--detach', '--name', 'w2', '--replicas', '2', 'busybox', 'sleep', '600']));
    const running = await waitFor('2 running runc containers', () => {
      const cs = runningContainers(hosts());
      return cs.length === 2 ? cs : undefined;
    });
    // One worker's daemon dies hard first: its containers outlive it, and lab down must find them.
    const w1 = hosts().find((h) => h.name === `${name}-w1`)!;
    ok(shoal(['lab', 'kill', '--name', name, w1.name]));
    const down = shoal(['lab', 'down', '--name', name]);
    expect(down.status, down.stderr + down.stdout).toBe(0);
    for (const c of running) expect(alive(c.pid), `container process ${c.pid}`).toBe(false);
    const labDir = join(root, name);
    expect(readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(labDir))).toEqual([]);
    const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    expect(netns.split('\n').filter((l) => l.includes(name))).toEqual([]);
  }, 70_000);
});
