// The swarm plugin in two real daemons (one process, unix sockets, managers on loopback with port
// 0): what the Docker API answers before and after init, join through the manager token (and the
// worker token's join and leave), every write through a follower forwarded to the leader, Docker's status
// codes and bodies for the control API's errors, and leave.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unixRequest } from '../../testing/http.js';
import { MSG_ALREADY_IN_SWARM, MSG_NO_SWARM, MSG_NOT_IN_SWARM, MSG_WORKER_NOT_MANAGER } from '../api/errors.js';
import { Daemon } from '../daemon.js';
import type { DaemonOptions } from '../options.js';
import { SwarmPlugin } from './plugin.js';

const silent = pino({ level: 'silent' });
const WAIT_LIMIT_MS = 20_000;

let dir: string;
const daemons: Daemon[] = [];
const sockets: string[] = [];

function optionsFor(i: number): DaemonOptions {
  return {
    dataRoot: join(dir, `d${i}`, 'data'),
    socket: join(dir, `d${i}`, 'shoal.sock'),
    listenAddr: '127.0.0.1:0',
    advertiseAddr: '',
    registryMirrors: [],
    insecureRegistries: [],
    logLevel: 'error',
    hostname: `host${i}`,
  };
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly contentType: string;
}

async function call(i: number, method: string, path: string, body?: unknown): Promise<Answer> {
  const r = await unixRequest(sockets[i] as string, method, `/v1.50${path}`, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { 'Content-Type': 'application/json' });
  return { status: r.status, body: r.text === '' ? undefined : (JSON.parse(r.text) as unknown), contentType: String(r.headers['content-type'] ?? '') };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  for (let i = 0; i < WAIT_LIMIT_MS / 50; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoald-swarm-'));
  for (let i = 0; i < 2; i++) {
    const opts = optionsFor(i);
    const d = new Daemon(opts, silent, [new SwarmPlugin()]);
    await d.start();
    daemons.push(d);
    sockets.push(opts.socket);
  }
});

afterAll(async () => {
  for (const d of daemons.reverse()) await d.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the swarm plugin', () => {
  let leaderId = '';
  let leaderAddr = '';

  it('before init: swarm endpoints answer dockerd\'s 503s and /info says inactive', async () => {
    expect(await call(0, 'GET', '/swarm')).toEqual({ status: 503, body: { message: MSG_NO_SWARM }, contentType: 'application/json' });
    expect((await call(0, 'GET', '/services')).status).toBe(503);
    expect(await call(0, 'POST', '/swarm/leave')).toMatchObject({ status: 503, body: { message: MSG_NOT_IN_SWARM } });
    expect(((await call(0, 'GET', '/info')).body as Obj)['Swarm']).toMatchObject({ LocalNodeState: 'inactive', NodeID: '', ControlAvailable: false });
  });

  it('init answers the node ID as a JSON string; a second init is refused; /info and the ping header report the manager', async () => {
    const init = await call(0, 'POST', '/swarm/init', { ListenAddr: '127.0.0.1:0', AdvertiseAddr: '', ForceNewCluster: false, Spec: { Orchestration: {}, Raft: { ElectionTick: 0 } } });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    leaderId = init.body as string;
    expect(leaderId).toMatch(/^[a-z0-9]{25}$/);
    expect(await call(0, 'POST', '/swarm/init', {})).toMatchObject({ status: 503, body: { message: MSG_ALREADY_IN_SWARM } });
    const node = (await call(0, 'GET', `/nodes/${leaderId}`)).body as Obj;
    leaderAddr = node['ManagerStatus']['Addr'] as string;
    expect(node['ManagerStatus']).toMatchObject({ Leader: true, Reachability: 'reachable' });
    expect(leaderAddr).toMatch(/^127\.0\.0\.1:\d+$/);
    const ping = await unixRequest(sockets[0] as string, 'HEAD', '/_ping');
    expect(ping.headers['swarm']).toBe('active/manager');
    const swarm = ((await call(0, 'GET', '/info')).body as Obj)['Swarm'] as Obj;
    expect(swarm).toMatchObject({ NodeID: leaderId, NodeAddr: '127.0.0.1', LocalNodeState: 'active', ControlAvailable: true, Managers: 1, Nodes: 1, RemoteManagers: [{ NodeID: leaderId, Addr: leaderAddr }] });
    expect(swarm['Cluster']['JoinTokens']).toBeUndefined();
    const described = await waitFor('the node description', async () => {
      const n = (await call(0, 'GET', `/nodes/${leaderId}`)).body as Obj;
      return n['Description']?.['Hostname'] === 'host0' ? n : undefined;
    });
    expect(described['Description']['Engine']['EngineVersion']).toBeTypeOf('string');
  });

  it('GET /swarm has the join tokens and the complete effective spec', async () => {
    const s = (await call(0, 'GET', '/swarm')).body as Obj;
    expect(s['JoinTokens']['Worker']).toMatch(/^SWMTKN-1-/);
    expect(s['JoinTokens']['Manager']).toMatch(/^SWMTKN-1-/);
    expect(s['Version']['Index']).toBeTypeOf('number');
    expect(s['Spec']).toMatchObject({ Name: 'default', Orchestration: { TaskHistoryRetentionLimit: 5 }, Dispatcher: { HeartbeatPeriod: 5_000_000_000 }, Raft: { ElectionTick: 10 }, EncryptionConfig: { AutoLockManagers: false } });
    expect(s['ShoalCA']).toBeUndefined();
    expect(await call(0, 'GET', '/swarm/unlockkey')).toMatchObject({ status: 200, body: { UnlockKey: '' } });
  });

  it('a worker token joins as a worker (agent ready, ControlAvailable false), restarts with the daemon, leaves; the manager token joins', async () => {
    const s = (await call(0, 'GET', '/swarm')).body as Obj;
    const worker = await call(1, 'POST', '/swarm/join', { ListenAddr: '127.0.0.1:0', RemoteAddrs: [leaderAddr], JoinToken: s['JoinTokens']['Worker'] });
    expect(worker.status, JSON.stringify(worker.body)).toBe(200);
    const wInfo = ((await call(1, 'GET', '/info')).body as Obj)['Swarm'] as Obj;
    expect(wInfo).toMatchObject({ LocalNodeState: 'active', ControlAvailable: false });
    const workerId = wInfo['NodeID'] as string;
    expect(workerId).not.toBe('');
    const node = await waitFor('the worker node to be ready', async () => {
      const n = await call(0, 'GET', `/nodes/${workerId}`);
      return n.status === 200 && (n.body as Obj)['Status']['State'] === 'ready' ? (n.body as Obj) : undefined;
    });
    expect(node['Spec']['Role']).toBe('worker');
    expect(node['Description']['Hostname']).toBe('host1');
    expect(await call(1, 'GET', '/services')).toMatchObject({ status: 503, body: { message: MSG_WORKER_NOT_MANAGER } });
    expect(await call(1, 'POST', '/swarm/join', { RemoteAddrs: [leaderAddr], JoinToken: 'x' })).toMatchObject({ status: 503, body: { message: MSG_ALREADY_IN_SWARM } });
    // A restarted daemon restarts the agent from the persisted worker identity.
    await daemons[1]!.stop();
    const again = new Daemon(optionsFor(1), silent, [new SwarmPlugin()]);
    await again.start();
    daemons[1] = again;
    expect(((await call(1, 'GET', '/info')).body as Obj)['Swarm']).toMatchObject({ LocalNodeState: 'active', ControlAvailable: false, NodeID: workerId });
    await waitFor('the restarted worker node to be ready', async () => {
      const n = await call(0, 'GET', `/nodes/${workerId}`);
      return (n.body as Obj)['Status']['State'] === 'ready' ? true : undefined;
    });
    expect((await call(1, 'POST', '/swarm/leave')).status).toBe(200);
    expect(((await call(1, 'GET', '/info')).body as Obj)['Swarm']['LocalNodeState']).toBe('inactive');
    await waitFor('the left worker to be down', async () => {
      const n = await call(0, 'GET', `/nodes/${workerId}`);
      return (n.body as Obj)['Status']['State'] === 'down' ? true : undefined;
    });
    expect((await call(0, 'DELETE', `/nodes/${workerId}?force=1`)).status).toBe(200);
    const join = await call(1, 'POST', '/swarm/join', { ListenAddr: '127.0.0.1:0', RemoteAddrs: [leaderAddr], JoinToken: s['JoinTokens']['Manager'] });
    expect(join.status, JSON.stringify(join.body)).toBe(200);
    const info = await waitFor('two managers on the follower', async () => {
      const sw = ((await call(1, 'GET', '/info')).body as Obj)['Swarm'] as Obj;
      return sw['Managers'] === 2 ? sw : undefined;
    });
    expect(info).toMatchObject({ LocalNodeState: 'active', ControlAvailable: true, Nodes: 2 });
    expect(await call(1, 'POST', '/swarm/join', { RemoteAddrs: [leaderAddr], JoinToken: 'x' })).toMatchObject({ status: 503, body: { message: MSG_ALREADY_IN_SWARM } });
  });

  it('services through the follower: 201 create, 409 conflict, 500 stale version, status counts, 404 after removal', async () => {
    const spec = { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox:latest', Init: false, DNSConfig: {}, Unmodelled: { kept: true } } }, Mode: { Replicated: { Replicas: 2 } } };
    const created = await call(1, 'POST', '/services/create', spec);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as Obj)['ID'] as string;
    expect(created.body).toEqual({ ID: id, Warnings: null });
    expect(await call(1, 'POST', '/services/create', spec)).toEqual({
      status: 409,
      body: { message: 'rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists' },
      contentType: 'application/json',
    });
    const svc = await waitFor('web on the follower', async () => {
      const r = await call(1, 'GET', '/services/web');
      return r.status === 200 ? (r.body as Obj) : undefined;
    });
    expect(svc['Spec']['TaskTemplate']['ContainerSpec']['Unmodelled']).toEqual({ kept: true });
    const version = svc['Version']['Index'] as number;
    const scaled = await call(1, 'POST', `/services/${id}/update?version=${version}`, { ...svc['Spec'], Mode: { Replicated: { Replicas: 3 } } });
    expect(scaled).toMatchObject({ status: 200, body: { Warnings: null } });
    expect(await call(1, 'POST', `/services/${id}/update?version=${version}`, svc['Spec'])).toMatchObject({
      status: 500,
      body: { message: 'rpc error: code = Unknown desc = update out of sequence' },
    });
    const listed = await waitFor('the scaled service in the follower\'s list', async () => {
      const list = (await call(1, 'GET', '/services?status=true')).body as Obj[];
      return list[0]?.['ServiceStatus']?.['DesiredTasks'] === 3 ? list : undefined;
    });
    expect(listed.map((s) => [s['Spec']['Name'], s['ServiceStatus']])).toEqual([['web', { RunningTasks: 0, DesiredTasks: 3, CompletedTasks: 0 }]]);
    expect(((await call(0, 'GET', `/services/${id.slice(0, 6)}?insertDefaults=true`)).body as Obj)['Spec']['UpdateConfig']).toMatchObject({ Parallelism: 1, FailureAction: 'pause' });
    expect(await call(0, 'GET', '/services?filters=%7B%22x%22%3A%7B%22y%22%3Atrue%7D%7D')).toMatchObject({ status: 400, body: { message: "invalid filter 'x'" } });
    expect(((await call(0, 'GET', '/services?filters=%7B%22name%22%3A%5B%22we%22%5D%7D')).body as Obj[]).length).toBe(1);
    expect(await call(1, 'DELETE', '/services/web')).toMatchObject({ status: 200 });
    const gone = await waitFor('web removed on the leader', async () => {
      const r = await call(0, 'GET', '/services/web');
      return r.status === 404 ? r : undefined;
    });
    expect((gone.body as Obj)['message']).toContain('web not found');
  });

  it('secrets never return their data; networks answer in the /networks shape; drivers other than overlay are refused', async () => {
    const s = await call(1, 'POST', '/secrets/create', { Name: 's1', Labels: {}, Data: Buffer.from('hunter2').toString('base64') });
    expect(s.status, JSON.stringify(s.body)).toBe(201);
    const sid = (s.body as Obj)['ID'] as string;
    const got = await waitFor('s1 on the follower', async () => {
      const r = await call(1, 'GET', '/secrets/s1');
      return r.status === 200 ? (r.body as Obj) : undefined;
    });
    expect(got['ID']).toBe(sid);
    expect(got['Spec']['Data']).toBeUndefined();
    expect(await call(1, 'DELETE', `/secrets/${sid}`)).toMatchObject({ status: 204 });

    const n = await call(1, 'POST', '/networks/create', { Name: 'net1', Driver: 'overlay', IPAM: { Driver: 'default', Config: [] }, Options: {}, Labels: {} });
    expect(n.status, JSON.stringify(n.body)).toBe(201);
    expect(n.body).toMatchObject({ Warning: '' });
    const net = await waitFor('net1 on the leader', async () => {
      const r = await call(0, 'GET', '/networks/net1');
      return r.status === 200 ? (r.body as Obj) : undefined;
    });
    expect(net).toMatchObject({ Name: 'net1', Id: (n.body as Obj)['Id'], Scope: 'swarm', Driver: 'overlay' });
    const bridge = await call(0, 'POST', '/networks/create', { Name: 'b1', Driver: 'bridge' });
    expect(bridge.status).toBe(400);
    expect((bridge.body as Obj)['message']).toContain('not supported for swarm networks');
    expect(await call(0, 'DELETE', '/networks/net1')).toMatchObject({ status: 204 });
  });

  it('a follower reads what was just written, at once: through itself or on the leader (Raft read barrier, no stale view)', async () => {
    for (let i = 0; i < 10; i++) {
      const via = i % 2; // 0: written on the leader, 1: through the follower (forwarded)
      const c = await call(via, 'POST', '/configs/create', { Name: `rw${i}`, Labels: {}, Data: Buffer.from(`v${i}`).toString('base64') });
      expect(c.status, JSON.stringify(c.body)).toBe(201);
      const id = (c.body as Obj)['ID'] as string;
      const got = await call(1, 'GET', `/configs/${id}`);
      expect(got.status, `config rw${i} written on daemon ${via}, read on the follower: ${JSON.stringify(got.body)}`).toBe(200);
      expect((got.body as Obj)['Spec']['Name']).toBe(`rw${i}`);
    }
    const listed = (await call(1, 'GET', '/configs')).body as Obj[];
    expect(listed.map((c) => c['Spec']['Name'] as string).filter((n) => n.startsWith('rw')).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `rw${i}`).sort());
    for (let i = 0; i < 10; i++) expect((await call(i % 2, 'DELETE', `/configs/rw${i}`)).status).toBe(204);
    expect(((await call(1, 'GET', '/configs')).body as Obj[]).filter((c) => String(c['Spec']['Name']).startsWith('rw'))).toEqual([]);
  });

  it('node update through the follower, and leave: refused without force, then the node is out of the swarm', async () => {
    const node = (await call(1, 'GET', `/nodes/${leaderId}`)).body as Obj;
    const upd = await call(1, 'POST', `/nodes/${leaderId}/update?version=${node['Version']['Index'] as number}`, { ...node['Spec'], Availability: 'drain' });
    expect(upd.status, JSON.stringify(upd.body)).toBe(200);
    await waitFor('drain on the follower', async () => (((await call(1, 'GET', `/nodes/${leaderId}`)).body as Obj)['Spec']['Availability'] === 'drain' ? true : undefined));
    await waitFor('both managers reachable on the follower', async () => {
      const nodes = (await call(1, 'GET', '/nodes')).body as Obj[];
      return nodes.filter((n) => n['ManagerStatus']?.['Reachability'] === 'reachable').length === 2 ? true : undefined;
    });
    const refused = await call(1, 'POST', '/swarm/leave');
    expect(refused.status).toBe(503);
    expect((refused.body as Obj)['message']).toMatch(/^You are attempting to leave the swarm on a node that is participating as a manager\. Removing this node leaves 1 managers out of 2\./);
    expect(await call(1, 'POST', '/swarm/leave?force=1')).toMatchObject({ status: 200 });
    expect(((await call(1, 'GET', '/info')).body as Obj)['Swarm']['LocalNodeState']).toBe('inactive');
    expect((await call(1, 'GET', '/nodes')).status).toBe(503);
  });
});
