// The lab as a user drives it: `shoal lab up` builds hosts (network namespaces on a bridge) with
// their own shoald; the real docker CLI talks to them; exec, partition/heal, kill/start work; and
// `lab down` leaves nothing behind — also after `lab up` itself was killed half-way.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeName, forwardChain, isLabHostName, vethPrefix } from '../cli/lab/naming.js';
import type { LabState } from '../cli/lab/state.js';
import { unixRequest } from '../cli/testing/http.js';
import { ensureCliBuilt } from './build-cli.js';

const REPO = join(import.meta.dirname, '..');
const SHOAL = [process.execPath, join(REPO, 'bin', 'shoal')];
const BUILD_TIMEOUT_MS = 240_000;
const POLL_MS = 50;
const WAIT_LIMIT_MS = 30_000;

let root = ''; // '' until beforeAll made it: afterAll must not fail over a failed beforeAll
let dockerConfig = '';

function shoal(args: readonly string[]): SpawnSyncReturns<string> {
  const [node, ...pre] = SHOAL as [string, ...string[]];
  return spawnSync(node, [...pre, ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, SHOAL_LAB_ROOT: root }, timeout: 90_000 });
}

function docker(args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync('docker', [...args], { encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: dockerConfig }, timeout: 30_000 });
}

function sh(cmd: string, args: readonly string[]): string {
  return spawnSync(cmd, [...args], { encoding: 'utf8' }).stdout;
}

function labState(name: string): LabState {
  return JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as LabState;
}

/** Everything a lab makes, checked from the outside. */
function assertNothingLeft(name: string): void {
  const netns = sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '');
  expect(netns.filter((n) => isLabHostName(name, n))).toEqual([]);
  const links = sh('ip', ['-o', 'link', 'show']);
  expect(links).not.toContain(bridgeName(name));
  expect(links).not.toContain(vethPrefix(name));
  expect(sh('iptables', ['-S'])).not.toContain(forwardChain(name));
  const dir = join(root, name);
  expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(dir);
  const procs = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${dir}/`);
    } catch {
      return false;
    }
  });
  expect(procs).toEqual([]);
  expect(existsSync(dir)).toBe(false);
}

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-lab-'));
  dockerConfig = await mkdtemp(join(tmpdir(), 'shoal-e2e-docker-'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
  if (dockerConfig !== '') await rm(dockerConfig, { recursive: true, force: true });
});

describe('a lab of one manager host and one worker host', () => {
  const name = `e2e-${process.pid}`;
  let state: LabState;
  const m1 = (): LabState['hosts'][number] => state.hosts[0] as LabState['hosts'][number];
  const w1 = (): LabState['hosts'][number] => state.hosts[1] as LabState['hosts'][number];

  beforeAll(() => {
    const up = shoal(['lab', 'up', '--name', name, '--managers', '1', '--workers', '1']);
    expect(up.status, up.stderr + up.stdout).toBe(0);
    expect(up.stdout).toContain(`${name}-m1`);
    expect(up.stdout).toContain(`${name}-w1`);
    expect(up.stdout).toContain(`formed: 1 manager (leader ${name}-m1`);
    state = labState(name);
  });

  afterAll(() => {
    shoal(['lab', 'down', '--name', name]); // also when a test failed
  });

  it('each host runs its own daemon, answering on its socket as that host', async () => {
    expect(state.hosts.map((h) => [h.name, h.role])).toEqual([[`${name}-m1`, 'manager'], [`${name}-w1`, 'worker']]);
    for (const host of state.hosts) {
      const ping = await unixRequest(host.socket, 'HEAD', '/_ping');
      expect(ping.status).toBe(200);
      expect(ping.headers['api-version']).toBe('1.50');
      const info = shoal(['info', '-H', `unix://${host.socket}`, '--format', '{{.Name}} {{.Swarm.LocalNodeState}} {{json .RegistryConfig.Mirrors}}']);
      expect(info.stdout).toBe(`${host.name} active ["http://${state.registry.address ?? ''}"]\n`);
    }
  });

  it('the real docker CLI works against a lab daemon', () => {
    const sock = `unix://${m1().socket}`;
    const version = docker(['-H', sock, 'version', '--format', '{{.Server.APIVersion}}']);
    expect(version.stdout.trim(), version.stderr).toBe('1.50');
    const info = docker(['-H', sock, 'info', '--format', '{{.Swarm.LocalNodeState}}']);
    expect(info.stdout.trim(), info.stderr).toBe('active');
    // The worker host is in the swarm as a worker: cluster state is for managers (dockerd's 503).
    const ls = docker(['-H', `unix://${w1().socket}`, 'service', 'ls']);
    expect(ls.status).toBe(1);
    expect(ls.stderr.trim()).toBe(
      "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.",
    );
  });

  it('the registry on the bridge serves the seeded busybox image', async () => {
    const res = await fetch(`http://${state.registry.address ?? ''}/v2/library/busybox/manifests/latest`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { layers: unknown[] }).layers).toHaveLength(1);
  });

  it('lab exec runs in the host namespace with the host daemon as DOCKER_HOST', () => {
    const addr = shoal(['lab', 'exec', '--name', name, `${name}-m1`, '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(addr.status, addr.stderr).toBe(0);
    expect(addr.stdout).toContain(`inet ${m1().address}/24`);
    const env = shoal(['lab', 'exec', '--name', name, 'w1', '--', 'sh', '-c', 'echo $DOCKER_HOST $SHOAL_HOST']);
    expect(env.stdout.trim()).toBe(`unix://${w1().socket} unix://${w1().socket}`);
    const fails = shoal(['lab', 'exec', '--name', name, 'm1', '--', 'sh', '-c', 'exit 7']);
    expect(fails.status).toBe(7);
    const envOut = shoal(['lab', 'env', '--name', name, 'm1']);
    expect(envOut.stdout).toContain(`export DOCKER_HOST=unix://${m1().socket}\nexport SHOAL_HOST=unix://${m1().socket}\n`);
  });

  it('hosts reach each other; a partition cuts them apart and heal joins them again', () => {
    const ping = (from: string, to: string): number | null => shoal(['lab', 'exec', '--name', name, from, '--', 'ping', '-c1', '-W1', to]).status;
    expect(ping('m1', w1().address)).toBe(0);
    expect(ping('w1', m1().address)).toBe(0);
    const cut = shoal(['lab', 'partition', '--name', name, 'm1', '--', 'w1']);
    expect(cut.stdout.trim(), cut.stderr).toBe(`partitioned ${name}-m1 | ${name}-w1`);
    expect(ping('m1', w1().address)).not.toBe(0);
    expect(ping('w1', m1().address)).not.toBe(0);
    expect(shoal(['lab', 'ls', '--name', name]).stdout).toContain(`partitions: ${name}-m1 | ${name}-w1`);
    const heal = shoal(['lab', 'heal', '--name', name]);
    expect(heal.status, heal.stderr).toBe(0);
    expect(ping('m1', w1().address)).toBe(0);
    expect(ping('w1', m1().address)).toBe(0);
  });

  it('lab kill SIGKILLs a daemon and lab start brings it back on the same data root', async () => {
    const before = m1().daemon?.pid;
    const kill = shoal(['lab', 'kill', '--name', name, 'm1']);
    expect(kill.stdout.trim(), kill.stderr).toBe(`killed shoald of ${name}-m1 (pid ${before ?? '?'}, SIGKILL)`);
    await expect(unixRequest(m1().socket, 'GET', '/_ping')).rejects.toThrow();
    expect(shoal(['lab', 'ls', '--name', name]).stdout).toMatch(new RegExp(`${name}-m1\\s+manager\\s+\\S+\\s+stopped`));
    const start = shoal(['lab', 'start', '--name', name, 'm1']);
    expect(start.status, start.stderr).toBe(0);
    expect(start.stdout).toMatch(new RegExp(`^started shoald of ${name}-m1 \\(pid \\d+\\)`));
    expect((await unixRequest(m1().socket, 'GET', '/_ping')).status).toBe(200);
    expect(labState(name).hosts[0]?.daemon?.pid).not.toBe(before);
  });

  it('lab down removes everything, and a second lab down has nothing to remove', () => {
    const down = shoal(['lab', 'down', '--name', name]);
    expect(down.status, down.stderr).toBe(0);
    expect(down.stdout).toContain(`namespace ${name}-m1`);
    expect(down.stdout).toContain(`bridge ${bridgeName(name)}`);
    assertNothingLeft(name);
    const again = shoal(['lab', 'down', '--name', name]);
    expect([again.status, again.stdout]).toEqual([0, `lab "${name}": nothing to remove\n`]);
  });
});

describe('lab down after lab up was killed half-way', () => {
  const name = `e2e-${process.pid}-k`;

  afterAll(() => {
    shoal(['lab', 'down', '--name', name]);
  });

  it('finds and removes what the killed lab up had made', async () => {
    const [node, ...pre] = SHOAL as [string, ...string[]];
    const up = spawn(node, [...pre, 'lab', 'up', '--name', name, '--managers', '1', '--workers', '0'], {
      cwd: REPO,
      env: { ...process.env, SHOAL_LAB_ROOT: root },
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => up.once('exit', () => resolve()));
    // Kill it once its daemon has been started (recorded in the state file), before it answers.
    const deadline = Date.now() + WAIT_LIMIT_MS;
    let started = false;
    while (!started && Date.now() < deadline && up.exitCode === null) {
      try {
        started = labState(name).hosts[0]?.daemon !== undefined;
      } catch {
        // no state file yet
      }
      if (!started) await new Promise((r) => setTimeout(r, POLL_MS));
    }
    up.kill('SIGKILL');
    await exited;
    expect(started).toBe(true);
    expect(sh('ip', ['netns', 'list'])).toContain(`${name}-m1`);

    const down = shoal(['lab', 'down', '--name', name]);
    expect(down.status, down.stderr).toBe(0);
    expect(down.stdout).toContain(`namespace ${name}-m1`);
    assertNothingLeft(name);
  });
});
