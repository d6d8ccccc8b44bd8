// A lab of three managers and two workers, as a user with the real docker CLI sees it through
// trouble: a rolling update and `docker service rollback`; a worker's daemon killed → its tasks run
// elsewhere; the leader partitioned from everyone → the majority elects, keeps the service running
// and accepts writes while the cut-off minority refuses them, and healing converges without
// duplicate tasks. One lab for the file, always taken down.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabState } from '../cli/lab/state.js';
import { ensureCliBuilt } from './build-cli.js';
import { ok, pollUntil } from './support.js';

type Host = LabState['hosts'][number];

const REPO = join(import.meta.dirname, '..');
const SHOAL = [process.execPath, join(REPO, 'bin', 'shoal')];
const BUILD_TIMEOUT_MS = 240_000;
const POLL_MS = 500;
const WAIT_LIMIT_MS = 90_000;

let root = ''; // '' until beforeAll made it: afterAll must not fail over a failed beforeAll
let dockerConfig = '';

function shoal(args: readonly string[]): SpawnSyncReturns<string> {
  const [node, ...pre] = SHOAL as [string, ...string[]];
  return spawnSync(node, [...pre, ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, SHOAL_LAB_ROOT: root }, timeout: 120_000 });
}

function docker(host: Host, args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync('docker', ['-H', `unix://${host.socket}`, ...args], { encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: dockerConfig }, timeout: 30_000 });
}


/** Polls `probe` until it returns a value (bounded); see pollUntil. */
function waitFor<T>(what: string, probe: () => T | undefined, limitMs = WAIT_LIMIT_MS): Promise<T> {
  return pollUntil(what, probe, limitMs, POLL_MS);
}

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-resilience-'));
  dockerConfig = await mkdtemp(join(tmpdir(), 'shoal-e2e-docker-'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
  if (dockerConfig !== '') await rm(dockerConfig, { recursive: true, force: true });
});

describe('three managers and two workers through updates, a dead worker and a partitioned leader', () => {
  const name = `e2r-${process.pid}`;
  let state: LabState;
  const hosts = (): Host[] => state.hosts;
  const byName = (n: string): Host => hosts().find((h) => h.name === n) as Host;

  /** Running tasks of a service (desired running, current Running): node hostnames, asked of `via`. */
  function runningOn(via: Host, service: string): string[] {
    return ok(docker(via, ['service', 'ps', service, '--filter', 'desired-state=running', '--format', '{{.Node}}|{{.CurrentState}}']))
      .trim()
      .split('\n')
      .filter((l) => l.split('|')[1]?.startsWith('Running') === true)
      .map((l) => l.split('|')[0] as string);
  }

  function nodeStatuses(via: Host): Record<string, string> {
    const lines = ok(docker(via, ['node', 'ls', '--format', '{{.Hostname}}|{{.Status}}|{{.ManagerStatus}}'])).trim().split('\n');
    return Object.fromEntries(lines.map((l) => l.split('|')).map(([h, s, m]) => [h as string, `${s ?? ''}|${m ?? ''}`]));
  }

  function leaderSeenBy(via: Host): string | undefined {
    return Object.entries(nodeStatuses(via)).find(([, v]) => v.endsWith('|Leader'))?.[0];
  }

  beforeAll(() => {
    const up = shoal(['lab', 'up', '--name', name, '--managers', '3', '--workers', '2']);
    expect(up.status, up.stderr + up.stdout).toBe(0);
    state = JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as LabState;
  }, 180_000);

  afterAll(() => {
    shoal(['lab', 'down', '--name', name]); // also when a test failed
  }, 90_000);

  it('init and join: three managers and two workers, all Ready, one Leader', async () => {
    const statuses = await waitFor('five Ready nodes with one Leader and two Reachable', () => {
      const s = nodeStatuses(hosts()[0] as Host);
      const values = Object.values(s).sort();
      return Object.keys(s).length === 5 && values.join(',') === 'Ready|,Ready|,Ready|Leader,Ready|Reachable,Ready|Reachable' ? s : undefined;
    });
    expect(Object.keys(statuses).sort()).toEqual(hosts().map((h) => h.name).sort());
  }, 120_000);

  it('a rolling update, then docker service rollback to the previous spec', async () => {
    const m = hosts()[0] as Host;
    ok(docker(m, ['service', 'create', '-d', '--name', 'r', '--replicas', '4', '--update-parallelism', '2', 'busybox', 'sleep', '3600']));
    await waitFor('4 running tasks', () => (runningOn(m, 'r').length === 4 ? true : undefined));
    ok(docker(m, ['service', 'update', '-d', '--env-add', 'STEP=2', 'r']));
    await waitFor('the update to complete', () => (ok(docker(m, ['service', 'inspect', 'r', '--format', '{{.UpdateStatus.State}}'])).trim() === 'completed' ? true : undefined));
    expect(ok(docker(m, ['service', 'inspect', 'r', '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Env}}'])).trim()).toBe('["STEP=2"]');
    ok(docker(m, ['service', 'rollback', '-d', 'r']));
    await waitFor('the rollback to complete', () => (ok(docker(m, ['service', 'inspect', 'r', '--format', '{{.UpdateStatus.State}}'])).trim() === 'rollback_completed' ? true : undefined));
    expect(ok(docker(m, ['service', 'inspect', 'r', '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Env}}'])).trim()).toBe('null');
    await waitFor('4 running tasks after the rollback', () => (runningOn(m, 'r').length === 4 ? true : undefined));
  }, 240_000);

  it("a worker's daemon killed: its tasks run on the other nodes; restarted, it is Ready again", async () => {
    const m = hosts()[0] as Host;
    const workers = hosts().filter((h) => h.role === 'worker');
    const victim = workers.find((w) => runningOn(m, 'r').includes(w.name));
    expect(victim, 'a worker runs a task of r').toBeDefined();
    ok(shoal(['lab', 'kill', '--name', name, (victim as Host).name]));
    await waitFor('4 running tasks off the dead worker', () => {
      const on = runningOn(m, 'r').filter((n) => n !== (victim as Host).name);
      return on.length === 4 ? on : undefined;
    });
    expect(nodeStatuses(m)[(victim as Host).name]).toBe('Down|');
    ok(shoal(['lab', 'start', '--name', name, (victim as Host).name]));
    await waitFor('the worker Ready again', () => (nodeStatuses(m)[(victim as Host).name] === 'Ready|' ? true : undefined));
    // It does not run its old tasks beside their replacements.
    await waitFor('exactly 4 running tasks', () => (runningOn(m, 'r').length === 4 ? true : undefined));
  }, 240_000);

  it('the leader partitioned from everyone: the majority elects, keeps the service and takes writes; the minority refuses; healing converges', async () => {
    const leaderName = leaderSeenBy(hosts()[0] as Host) as string;
    expect(leaderName).toBeDefined();
    const leader = byName(leaderName);
    const others = hosts().filter((h) => h.name !== leaderName);
    const majority = others.find((h) => h.role === 'manager') as Host;
    ok(shoal(['lab', 'partition', '--name', name, leaderName, '--', ...others.map((h) => h.name)]));
    await waitFor('a new leader on the majority side', () => {
      const l = leaderSeenBy(majority);
      return l !== undefined && l !== leaderName ? l : undefined;
    });
    // Writes go through on the majority side (forwarded to its new leader).
    await waitFor('scale to 5 through the majority', () => (docker(majority, ['service', 'scale', '-d', 'r=5']).status === 0 ? true : undefined));
    await waitFor('5 running tasks off the cut-off leader', () => (runningOn(majority, 'r').filter((n) => n !== leaderName).length === 5 ? true : undefined), 120_000);
    // The cut-off old leader has no quorum: it refuses writes.
    const refused = await waitFor('the minority to refuse a write', () => {
      const r = docker(leader, ['service', 'scale', '-d', 'r=6']);
      return r.status !== 0 ? r.stderr : undefined;
    });
    expect(refused.length).toBeGreaterThan(0);
    ok(shoal(['lab', 'heal', '--name', name]));
    await waitFor('the old leader back: Ready and Reachable', () => (nodeStatuses(majority)[leaderName] === 'Ready|Reachable' ? true : undefined), 120_000);
    await waitFor('exactly 5 running tasks, seen from the old leader too', () => (runningOn(leader, 'r').length === 5 && runningOn(majority, 'r').length === 5 ? true : undefined), 120_000);
    expect(ok(docker(leader, ['service', 'inspect', 'r', '--format', '{{.Spec.Mode.Replicated.Replicas}}'])).trim()).toBe('5');
    ok(docker(majority, ['service', 'rm', 'r']));
  }, 420_000);
});
