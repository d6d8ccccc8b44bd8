// Overlay networking on a real lab (1 manager + 2 workers, each a shoald in its own network
// namespace, tasks in runc containers), driven by the real docker CLI and looked at from inside
// the containers (`runc exec` with the executor's root on the task's host):
//   - tasks on two hosts ping each other over the overlay;
//   - `web` resolves to the service VIP, `tasks.web` to every task's address, a dnsrr service to its task;
//   - repeated requests through the VIP reach every backend; scaling adds the new backend, and
//     scaling down takes the stopped ones out;
//   - a task on another network neither resolves nor reaches the service;
//   - a task on an overlay and one on no network reach an address outside their host (another lab
//     host), seen there as their host's address (the gateway bridge, masqueraded);
//   - a published port on a node without the task reaches it (routing mesh), from every host;
//   - a host-mode port reaches the task on its node only, shows in `service inspect` and the task's
//     PortStatus (`service ps` PORTS), and keeps a second task of the port off that node;
//   - after `service rm` and `network rm` nothing of the network is left (namespaces, links, rules).
// The lab is always taken down.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
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
const POLL_MS = 300;
const WAIT_LIMIT_MS = 40_000;

type Host = LabState['hosts'][number];

let root: string;
let dockerConfig: string;
let state: LabState | undefined;
const name = `e2o-${process.pid}`;

function shoal(args: readonly string[]): SpawnSyncReturns<string> {
  const [node, ...pre] = SHOAL as [string, ...string[]];
  return spawnSync(node, [...pre, ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, SHOAL_LAB_ROOT: root }, timeout: 90_000 });
}

function docker(args: readonly string[]): SpawnSyncReturns<string> {
  const manager = state!.hosts[0]!;
  return spawnSync('docker', ['-H', `unix://${manager.socket}`, ...args], { encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: dockerConfig }, timeout: 30_000 });
}


/** Polls `probe` until it returns a value (bounded); see pollUntil. */
function waitFor<T>(what: string, probe: () => T | undefined): Promise<T> {
  return pollUntil(what, probe, WAIT_LIMIT_MS, POLL_MS);
}

interface RunningTask {
  readonly id: string;
  readonly host: Host;
}

/** The service's Running tasks and their hosts, once there are `count`. */
function runningTasks(service: string, count: number): RunningTask[] | undefined {
  const lines = ok(docker(['service', 'ps', service, '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.ID}}|{{.Node}}|{{.CurrentState}}'])).trim().split('\n');
  const rows = lines.filter((l) => l !== '').map((l) => l.split('|') as [string, string, string]);
  if (rows.length !== count || !rows.every(([, , st]) => st.startsWith('Running'))) return undefined;
  return rows.map(([id, node]) => ({ id, host: state!.hosts.find((h) => h.name === node)! }));
}

/** A shell command inside a task's container (runc exec on its host). */
function inTask(t: RunningTask, script: string): string {
  const r = spawnSync('runc', ['--root', runcRootOf(t.host.dataRoot), 'exec', t.id, 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  return r.stdout + r.stderr;
}

/** Addresses an nslookup printed for the name (not the server's). */
function resolved(out: string): string[] {
  return [...out.matchAll(/^Address(?: \d+)?:\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!).sort();
}

const REQUEST = String.raw`printf 'GET /hostname HTTP/1.0\r\n\r\n' | nc -w 3`;

/** `count` HTTP requests from inside a task; the answers (the serving task's hostname = its ID), or errors. */
function requests(from: RunningTask, target: string, port: number, count: number): string[] {
  const out = inTask(from, `for i in $(seq ${count}); do ${REQUEST} ${target} ${port} | tail -1; echo; done`);
  return out.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** One HTTP request from a lab host's own namespace (bash's /dev/tcp: no nc on the machine). */
function hostRequest(from: Host, address: string, port: number): string {
  const r = spawnSync('nsenter', [`--net=/run/netns/${from.netns}`, 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port} && printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' >&3 && tail -1 <&3`], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  return (r.stdout + r.stderr).trim();
}

function taskAddress(taskId: string, network: string): string {
  const t = JSON.parse(ok(docker(['inspect', '--type', 'task', taskId])))[0] as { NetworksAttachments?: { Network: { Spec: { Name: string } }; Addresses: string[] }[] };
  const a = t.NetworksAttachments?.find((n) => n.Network.Spec.Name === network);
  return a!.Addresses[0]!.split('/')[0]!;
}

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-overlay-'));
  dockerConfig = await mkdtemp(join(tmpdir(), 'shoal-e2e-docker-'));
  const up = shoal(['lab', 'up', '--name', name, '--managers', '1', '--workers', '2']);
  expect(up.status, up.stderr + up.stdout).toBe(0);
  state = JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as LabState;
}, BUILD_TIMEOUT_MS + 120_000);

afterAll(async () => {
  if (root !== undefined) shoal(['lab', 'down', '--name', name]); // also when a test failed
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  if (dockerConfig !== undefined) await rm(dockerConfig, { recursive: true, force: true });
}, 60_000);

describe('overlay networks on a lab', () => {
  let web: RunningTask[] = [];
  let client: RunningTask;
  let outsider: RunningTask;
  let vip = '';

  beforeAll(async () => {
    ok(docker(['network', 'create', '-d', 'overlay', 'backend']));
    ok(docker(['network', 'create', '-d', 'overlay', 'other']));
    ok(docker(['service', 'create', '--detach', '--name', 'web', '--replicas', '2', '--network', 'backend', 'busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc']));
    ok(docker(['service', 'create', '--detach', '--name', 'client', '--network', 'backend', 'busybox', 'sleep', '600']));
    ok(docker(['service', 'create', '--detach', '--name', 'outsider', '--network', 'other', 'busybox', 'sleep', '600']));
    ok(docker(['service', 'create', '--detach', '--name', 'rr', '--endpoint-mode', 'dnsrr', '--network', 'backend', 'busybox', 'sleep', '600']));
    web = await waitFor('2 running web tasks', () => runningTasks('web', 2));
    client = (await waitFor('the client task', () => runningTasks('client', 1)))[0]!;
    outsider = (await waitFor('the outsider task', () => runningTasks('outsider', 1)))[0]!;
    const endpoint = JSON.parse(ok(docker(['service', 'inspect', 'web', '--format', '{{json .Endpoint.VirtualIPs}}']))) as { Addr: string }[];
    vip = endpoint[0]!.Addr.split('/')[0]!;
  }, 90_000);

  it('tasks on two hosts ping each other over the overlay', async () => {
    const remote = web.find((t) => t.host.name !== client.host.name);
    expect(remote, 'a web task on another host than the client').toBeDefined();
    const addr = taskAddress(remote!.id, 'backend');
    await waitFor(`ping ${addr}`, () => (/1 packets received/.test(inTask(client, `ping -c 1 -W 2 ${addr}`)) ? true : undefined));
    const back = taskAddress(client.id, 'backend');
    expect(inTask(remote!, `ping -c 2 -W 2 ${back}`)).toContain('2 packets received');
  }, 60_000);

  it('`web` resolves to its VIP and `tasks.web` to every task; a dnsrr service to its tasks', async () => {
    expect(resolved(inTask(client, 'nslookup web'))).toEqual([vip]);
    const [rr] = (await waitFor('the dnsrr task', () => runningTasks('rr', 1)))!;
    await waitFor('rr → its task address', () => (JSON.stringify(resolved(inTask(client, 'nslookup rr'))) === JSON.stringify([taskAddress(rr!.id, 'backend')]) ? true : undefined));
    expect(resolved(inTask(client, 'nslookup tasks.web'))).toEqual(web.map((t) => taskAddress(t.id, 'backend')).sort());
    expect(inTask(client, 'cat /etc/resolv.conf')).toMatch(/^nameserver 10\.\d+\.\d+\.1$/m);
  });

  it('repeated requests through the VIP reach every backend; scaling adds the new one', async () => {
    const seen = await waitFor('every backend through the VIP', () => {
      const got = new Set(requests(client, 'web', 8080, 12));
      return web.every((t) => got.has(t.id)) ? got : undefined;
    });
    expect([...seen].sort()).toEqual(web.map((t) => t.id).sort());
    ok(docker(['service', 'scale', '--detach', 'web=3']));
    const scaled = await waitFor('3 running web tasks', () => runningTasks('web', 3));
    await waitFor('the third backend through the VIP', () => {
      const got = new Set(requests(client, vip, 8080, 18));
      return scaled.every((t) => got.has(t.id)) ? true : undefined;
    });
  }, 90_000);

  it('a worker daemon killed and restarted rebuilds its data plane: its running web task answers through the VIP again', async () => {
    const scaled = await waitFor('3 running web tasks', () => runningTasks('web', 3));
    const victim = scaled.find((t) => t.host.role === 'worker' && t.host.name !== client.host.name);
    expect(victim, 'a web task on a worker without the client').toBeDefined();
    ok(shoal(['lab', 'kill', '--name', name, victim!.host.name]));
    ok(shoal(['lab', 'start', '--name', name, victim!.host.name]));
    // The same task (its container survived the daemon), reached again over a rebuilt sandbox.
    await waitFor(`${victim!.id} through the VIP after the restart`, () => (new Set(requests(client, vip, 8080, 18)).has(victim!.id) ? true : undefined));
    await waitFor('names from the restarted host', () => (resolved(inTask(victim!, 'nslookup client')).length === 1 ? true : undefined));
  }, 90_000);

  it('a task on another network cannot resolve or reach the service', () => {
    expect(resolved(inTask(outsider, 'nslookup web'))).toEqual([]);
    const answers = requests(outsider, vip, 8080, 1).concat(requests(outsider, taskAddress(web[0]!.id, 'backend'), 8080, 1));
    for (const a of answers) expect(web.some((t) => a === t.id)).toBe(false);
  }, 30_000);

  it('a task on an overlay and a task on no network reach an address outside their host, seen there as their host', async () => {
    ok(docker(['service', 'create', '--detach', '--name', 'loner', 'busybox', 'sleep', '600']));
    const [loner] = (await waitFor('the task on no network', () => runningTasks('loner', 1)))!;
    // "The outside world": a server on every lab host answering with the client's address as it sees it.
    const port = 7171;
    const source = `require('node:net').createServer((s) => { s.on('error', () => {}); s.end(s.remoteAddress + '\\n'); }).listen(${port}, () => console.log('ready'))`;
    const servers: ChildProcess[] = [];
    try {
      for (const h of state!.hosts) {
        const child = spawn('nsenter', [`--net=/run/netns/${h.netns}`, process.execPath, '-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
        servers.push(child);
        await new Promise<void>((resolve, reject) => {
          child.stdout!.once('data', () => resolve());
          child.once('exit', (code) => reject(new Error(`the server on ${h.name} exited ${code}`)));
        });
      }
      for (const t of [client, loner!]) {
        const outside = state!.hosts.find((h) => h.name !== t.host.name)!;
        const seen = await waitFor(`${t.host.name} → ${outside.name}:${port}`, () => /(\d+\.\d+\.\d+\.\d+)/.exec(inTask(t, `nc -w 3 ${outside.address} ${port} </dev/null`))?.[1]);
        expect(seen, `${t.id} on ${t.host.name}`).toBe(t.host.address);
      }
    } finally {
      for (const child of servers) child.kill('SIGKILL');
    }
    // No embedded resolver on no network: the host's nameservers (loopback ones left out).
    const resolv = inTask(loner!, 'cat /etc/resolv.conf');
    expect(resolv).toMatch(/^nameserver \S+$/m);
    expect(resolv).not.toMatch(/^nameserver 127\./m);
  }, 60_000);

  it('scaling down takes the stopped tasks out of the VIP and of tasks.web', async () => {
    ok(docker(['service', 'scale', '--detach', 'web=1']));
    const [left] = (await waitFor('1 running web task', () => runningTasks('web', 1)))!;
    await waitFor('only the remaining task through the VIP', () => {
      const got = new Set(requests(client, vip, 8080, 12));
      return got.size === 1 && got.has(left!.id) ? true : undefined;
    });
    await waitFor('tasks.web → the remaining task', () => (JSON.stringify(resolved(inTask(client, 'nslookup tasks.web'))) === JSON.stringify([taskAddress(left!.id, 'backend')]) ? true : undefined));
  }, 60_000);

  it('a published port on a node without the task reaches it, from every host', async () => {
    ok(docker(['service', 'create', '--detach', '--name', 'pub', '--publish', '30080:8080', 'busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc']));
    const [task] = (await waitFor('the published task', () => runningTasks('pub', 1)))!;
    const others = state!.hosts.filter((h) => h.name !== task!.host.name);
    expect(others.length).toBe(2);
    for (const target of others) {
      await waitFor(`port 30080 on ${target.name}`, () => (hostRequest(target, target.address, 30080) === task!.id ? true : undefined));
      for (const from of state!.hosts) expect(hostRequest(from, target.address, 30080), `${from.name} → ${target.name}:30080`).toBe(task!.id);
    }
  }, 60_000);

  it('a host-mode port reaches its task on that node only; inspect and service ps show it; the scheduler keeps a second one off the node', async () => {
    const port = { Protocol: 'tcp', TargetPort: 8080, PublishedPort: 31080, PublishMode: 'host' };
    ok(docker(['service', 'create', '--detach', '--name', 'hostpub', '--publish', 'mode=host,target=8080,published=31080', 'busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc']));
    const [task] = (await waitFor('the host-mode task', () => runningTasks('hostpub', 1)))!;
    expect(JSON.parse(ok(docker(['service', 'inspect', 'hostpub', '--format', '{{json .Endpoint.Ports}}'])))).toEqual([port]);
    expect(JSON.parse(ok(docker(['inspect', '--type', 'task', task!.id, '--format', '{{json .Status.PortStatus}}'])))).toEqual({ Ports: [port] });
    expect(ok(docker(['service', 'ps', 'hostpub', '--format', '{{.Ports}}'])).trim()).toBe('*:31080->8080/tcp');
    for (const from of state!.hosts) {
      await waitFor(`${from.name} → ${task!.host.name}:31080`, () => (hostRequest(from, task!.host.address, 31080) === task!.id ? true : undefined));
    }
    // Not a routing-mesh port: the other nodes do not answer it.
    for (const other of state!.hosts.filter((h) => h.name !== task!.host.name)) expect(hostRequest(other, other.address, 31080)).not.toBe(task!.id);
    // Four replicas of one host port on three nodes: one each, the fourth waits, saying why.
    ok(docker(['service', 'scale', '--detach', 'hostpub=4']));
    const placed = await waitFor('3 running and 1 pending', () => {
      const rows = ok(docker(['service', 'ps', 'hostpub', '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.ID}}|{{.Node}}|{{.CurrentState}}|{{.Error}}'])).trim().split('\n');
      const running = rows.filter((r) => r.split('|')[2]!.startsWith('Running'));
      const pending = rows.filter((r) => r.split('|')[2]!.startsWith('Pending'));
      return running.length === 3 && pending.length === 1 ? { running, pending: pending[0]! } : undefined;
    });
    expect(new Set(placed.running.map((r) => r.split('|')[1]))).toEqual(new Set(state!.hosts.map((h) => h.name)));
    const pendingId = placed.pending.split('|')[0]!;
    const err = await waitFor('the pending reason', () => {
      const t = JSON.parse(ok(docker(['inspect', '--type', 'task', pendingId])))[0] as { Status: { Err?: string } };
      return t.Status.Err;
    });
    expect(err).toMatch(/host-mode port 31080\/tcp in use/);
  }, 90_000);

  it('after service rm and network rm nothing of the networks is left', async () => {
    const networkIds = ['backend', 'other'].map((n) => ok(docker(['network', 'inspect', n, '--format', '{{.ID}}'])).trim());
    ok(docker(['service', 'rm', 'web', 'client', 'outsider', 'pub', 'rr', 'hostpub', 'loner']));
    await waitFor('the networks to be removable', () => {
      for (const n of ['backend', 'other']) {
        const r = docker(['network', 'rm', n]);
        if (r.status !== 0 && !r.stderr.includes('not found')) throw new Error(r.stderr.trim());
      }
      return true;
    });
    // The tasks' endpoints on the gateway bridge go with them (the bridge stays, as docker_gwbridge).
    await waitFor('no endpoint left on the gateway bridge', () =>
      state!.hosts.every((h) => spawnSync('nsenter', [`--net=/run/netns/${h.netns}`, 'ip', '-o', 'link', 'show', 'master', 'shoal_gwbridge'], { encoding: 'utf8' }).stdout.trim() === '') ? true : undefined,
    );
    await waitFor('no task namespace or network sandbox left', () => {
      const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
      const ours = netns.split('\n').filter((l) => l.includes(`shoal-${name}-`));
      const left = ours.filter((l) => /-t[a-z0-9]+/.test(l) || networkIds.some((id) => l.includes(`-n${id.slice(0, 12)}`)));
      return left.length === 0 ? true : undefined;
    });
    for (const host of state!.hosts) {
      const links = spawnSync('nsenter', [`--net=/run/netns/${host.netns}`, 'ip', '-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
      expect(links, host.name).not.toMatch(/shv\d+/);
      const nat = spawnSync('nsenter', [`--net=/run/netns/${host.netns}`, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' }).stdout;
      expect(nat, host.name).not.toContain('30080');
      expect(nat, host.name).not.toContain('31080');
    }
  }, 90_000);
});
