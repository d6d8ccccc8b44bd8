// A swarm of three managers on a real lab, driven by the real docker CLI as a user would: `lab up`
// forms the swarm (init on m1, managers join with the token); `docker node ls` shows one Leader and
// two Reachable managers; a service created through a follower is listed on every manager; a
// secret from stdin; the worker join token; and when the leader's host is killed another manager
// leads and the service is still there. The lab is always taken down.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabState } from '../cli/lab/state.js';
import { ensureCliBuilt } from './build-cli.js';
import { pollUntil } from './support.js';

const REPO = join(import.meta.dirname, '..');
const SHOAL = [process.execPath, join(REPO, 'bin', 'shoal')];
const BUILD_TIMEOUT_MS = 240_000;
const POLL_MS = 200;
const WAIT_LIMIT_MS = 30_000;

let root: string;
let dockerConfig: string;

function shoal(args: readonly string[]): SpawnSyncReturns<string> {
  const [node, ...pre] = SHOAL as [string, ...string[]];
  return spawnSync(node, [...pre, ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, SHOAL_LAB_ROOT: root }, timeout: 90_000 });
}

function docker(host: LabState['hosts'][number], args: readonly string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync('docker', ['-H', `unix://${host.socket}`, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DOCKER_CONFIG: dockerConfig },
    timeout: 30_000,
    ...(input !== undefined ? { input } : {}),
  });
}

/** Polls `probe` until it returns a value (bounded); see pollUntil. */
function waitFor<T>(what: string, probe: () => T | undefined): Promise<T> {
  return pollUntil(what, probe, WAIT_LIMIT_MS, POLL_MS);
}

/** `docker node ls` as hostname → MANAGER STATUS, asked of `host`. */
function managerStatuses(host: LabState['hosts'][number]): Record<string, string> | undefined {
  const ls = docker(host, ['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}']);
  if (ls.status !== 0) throw new Error(ls.stderr);
  return Object.fromEntries(
    ls.stdout
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split(' ') as [string, string]),
  );
}

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-swarm-'));
  dockerConfig = await mkdtemp(join(tmpdir(), 'shoal-e2e-docker-'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(dockerConfig, { recursive: true, force: true });
});

describe('a swarm of three managers on a lab, driven by the docker CLI', () => {
  const name = `e2s-${process.pid}`;
  let state: LabState;
  const host = (i: number): LabState['hosts'][number] => state.hosts[i] as LabState['hosts'][number];
  const names = (): string[] => state.hosts.map((h) => h.name);

  beforeAll(() => {
    const up = shoal(['lab', 'up', '--name', name, '--managers', '3', '--workers', '0']);
    expect(up.status, up.stderr + up.stdout).toBe(0);
    expect(up.stdout).toContain(`formed: 3 managers (leader ${name}-m1`);
    state = JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as LabState;
    expect(Object.keys(state.swarm?.nodeIds ?? {}).sort()).toEqual(names());
  }, 90_000);

  afterAll(() => {
    shoal(['lab', 'down', '--name', name]); // also when a test failed
  }, 60_000);

  it('docker node ls shows the three managers: one Leader, two Reachable, on every manager', async () => {
    for (const h of state.hosts) {
      const statuses = await waitFor(`three managers in node ls on ${h.name}`, () => {
        const s = managerStatuses(h);
        // Reachability is the leader's last word on each manager: right after the lab forms, or on a
        // loaded machine, a manager can show Unreachable for a moment before the leader hears it.
        return s !== undefined && Object.values(s).sort().join(',') === 'Leader,Reachable,Reachable' ? s : undefined;
      });
      expect(Object.keys(statuses).sort()).toEqual(names());
      expect(statuses[`${name}-m1`]).toBe('Leader');
      expect(Object.values(statuses).sort()).toEqual(['Leader', 'Reachable', 'Reachable']);
    }
    const info = docker(host(1), ['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Managers}} {{.Swarm.NodeID}}']);
    expect(info.stdout.trim(), info.stderr).toBe(`active true 3 ${state.swarm?.nodeIds?.[`${name}-m2`] ?? '?'}`);
  });

  it('a service created through a follower is listed and inspected on every manager', async () => {
    const create = docker(host(1), ['service', 'create', '-d', '--name', 'web', '--replicas', '0', 'busybox']);
    expect(create.status, create.stderr).toBe(0);
    const id = create.stdout.trim();
    expect(id).toMatch(/^[a-z0-9]{25}$/);
    for (const h of state.hosts) {
      const line = await waitFor(`web in service ls on ${h.name}`, () => {
        const ls = docker(h, ['service', 'ls', '--format', '{{.ID}} {{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}']);
        return ls.status === 0 && ls.stdout.includes(' web ') ? ls.stdout.trim() : undefined;
      });
      expect(line).toBe(`${id.slice(0, 12)} web replicated 0/0 busybox:latest`);
      const inspect = docker(h, ['service', 'inspect', 'web', '--format', '{{.ID}} {{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}}']);
      expect(inspect.stdout.trim(), inspect.stderr).toBe(`${id} web 0`);
    }
    const again = docker(host(2), ['service', 'create', '-d', '--name', 'web', 'busybox']);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists');
  });

  it('docker secret create from stdin, then secret ls; the data is never returned', async () => {
    const create = docker(host(2), ['secret', 'create', 'db-password', '-'], 'hunter2');
    expect(create.status, create.stderr).toBe(0);
    const id = create.stdout.trim();
    const ls = await waitFor('db-password in secret ls on m1', () => {
      const r = docker(host(0), ['secret', 'ls', '--format', '{{.ID}} {{.Name}}']);
      return r.stdout.includes('db-password') ? r.stdout.trim() : undefined;
    });
    expect(ls).toBe(`${id} db-password`);
    const inspect = docker(host(0), ['secret', 'inspect', 'db-password']);
    expect(inspect.status, inspect.stderr).toBe(0);
    expect(inspect.stdout).not.toContain(Buffer.from('hunter2').toString('base64'));
  });

  it('docker swarm join-token -q worker prints a SWMTKN-1 token', () => {
    const worker = docker(host(1), ['swarm', 'join-token', '-q', 'worker']);
    expect(worker.stdout.trim(), worker.stderr).toMatch(/^SWMTKN-1-[a-z0-9]+-[a-z0-9]+$/);
    const manager = docker(host(0), ['swarm', 'join-token', '-q', 'manager']);
    expect(manager.stdout.trim()).toMatch(/^SWMTKN-1-/);
    expect(manager.stdout.trim()).not.toBe(worker.stdout.trim());
  });

  it('the shoal CLI sees and changes the same cluster through a follower', async () => {
    const on = (args: readonly string[], input?: string): SpawnSyncReturns<string> => {
      const [node, ...pre] = SHOAL as [string, ...string[]];
      return spawnSync(node, [...pre, '-H', `unix://${host(2).socket}`, ...args], { cwd: REPO, encoding: 'utf8', timeout: 30_000, ...(input !== undefined ? { input } : {}) });
    };
    const ls = on(['node', 'ls']);
    expect(ls.status, ls.stderr).toBe(0);
    const lines = ls.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID {28}HOSTNAME {2,}STATUS {4}AVAILABILITY {3}MANAGER STATUS {3}ENGINE VERSION$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[1] === '*' ? l.split(/\s+/)[2] : undefined).filter(Boolean)).toEqual([`${name}-m3`]);
    const formatted = on(['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}']);
    expect(formatted.stdout.trim().split('\n').sort()).toEqual([`${name}-m1 Leader`, `${name}-m2 Reachable`, `${name}-m3 Reachable`]);
    const create = on(['service', 'create', '--name', 'api', '--replicas', '0', 'busybox', 'sleep', '60']);
    expect(create.stdout.trim(), create.stderr).toMatch(/^[a-z0-9]{25}$/);
    const services = await waitFor('api in shoal service ls', () => {
      const r = on(['service', 'ls', '--format', '{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}']);
      return r.stdout.includes('api ') ? r.stdout.trim().split('\n') : undefined;
    });
    expect(services).toEqual(['api replicated 0/0 busybox:latest', 'web replicated 0/0 busybox:latest']);
    expect(on(['service', 'inspect', 'api', '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Args}}']).stdout.trim()).toBe('["sleep","60"]');
    expect(on(['service', 'scale', 'api=0']).stdout).toBe('api scaled to 0\n');
    expect(on(['service', 'rm', 'api']).stdout).toBe('api\n');
    const secret = on(['secret', 'create', 'from-shoal', '-'], 'shh');
    expect(secret.status, secret.stderr).toBe(0);
    expect(on(['secret', 'ls', '-q']).stdout).toContain(secret.stdout.trim());
    expect(on(['swarm', 'join-token', '-q', 'worker']).stdout.trim()).toBe(docker(host(0), ['swarm', 'join-token', '-q', 'worker']).stdout.trim());
    const missing = on(['service', 'rm', 'nope']);
    expect([missing.status, missing.stderr.trim()]).toEqual([1, 'Error response from daemon: service nope not found']);
  });

  it('when the leader host is killed another manager leads and the service is still listed', async () => {
    const before = managerStatuses(host(0)) ?? {};
    const leader = Object.entries(before).find(([, s]) => s === 'Leader')?.[0];
    expect(leader).toBeDefined();
    const kill = shoal(['lab', 'kill', '--name', name, leader as string]);
    expect(kill.status, kill.stderr).toBe(0);
    const survivor = state.hosts.find((h) => h.name !== leader) as LabState['hosts'][number];
    const after = await waitFor('a new leader in node ls', () => {
      const s = managerStatuses(survivor);
      const now = s === undefined ? undefined : Object.entries(s).find(([, v]) => v === 'Leader')?.[0];
      return now !== undefined && now !== leader ? s : undefined;
    });
    expect(Object.keys(after).sort()).toEqual(names());
    for (const h of state.hosts.filter((x) => x.name !== leader)) {
      const ls = docker(h, ['service', 'ls', '--format', '{{.Name}}']);
      expect(ls.stdout.trim(), ls.stderr).toBe('web');
    }
    // Writes work again through the survivors (forwarded to the new leader where needed).
    const scale = await waitFor('a write after the failover', () => {
      const r = docker(survivor, ['service', 'scale', '-d', 'web=0']);
      return r.status === 0 ? r.stdout.trim() : undefined;
    });
    expect(scale).toBe('web scaled to 0');
  });
});
