// The worker's network manager on the real kernel: two "hosts" as network namespaces joined by a
// veth underlay, one WorkerNetworks per host (as shoald runs it, with hand-made tasks and network
// views in the dispatcher's shapes), programs in the task namespaces it makes. Checks what a user
// of swarm sees: tasks on two hosts reach each other, the service VIP reaches every running backend
// and follows scaling, names resolve, another network cannot reach the service, a published port
// on the host without the task reaches it (routing mesh), every task (on no network, on an overlay,
// on ingress only) reaches an address outside its host through the gateway bridge, seen there as
// its node's address, and nothing is left afterwards.
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NetworkPeers, NetworkPeerTask } from '../../manager/dispatcher/network-peers.js';
import type { Network, Task } from '../../manager/store/types.js';
import { buildQuery, buildResponse, parseQuery, parseResponse } from '../../overlay/dns/message.js';
import { run } from '../../overlay/exec.js';
import { gatewayVethName } from '../../overlay/names.js';
import { NetnsLab } from '../../overlay/testing/netns-lab.js';
import { WorkerNetworks, VNI_OPTION } from './worker-networks.js';

const lab = new NetnsLab(`wn${process.pid}`);
const TAG_A = `wna${process.pid}`;
const TAG_B = `wnb${process.pid}`;
const ADDR_A = '172.31.243.1';
const ADDR_B = '172.31.243.2';
let hostA = '';
let hostB = '';
let netA: WorkerNetworks;
let netB: WorkerNetworks;
let tmp = '';
/** The hosts' resolv.conf (a loopback stub first, as systemd-resolved's, which a task cannot use). */
let hostResolvConf = '';
const HOST_RESOLV_CONF = 'nameserver 127.0.0.53\nnameserver 10.9.9.9\nsearch example.test\noptions edns0\n';
const TASK_RESOLV_CONF = 'nameserver 10.9.9.9\nsearch example.test\noptions edns0\n';
/** A TCP server answering each connection with the client's address as it sees it. */
const PEER_ADDRESS_SERVER = String.raw`
const srv = require('node:net').createServer((s) => { s.on('error', () => {}); s.end(s.remoteAddress.replace(/^::ffff:/, '') + '\n'); });
srv.listen(Number(process.argv[1]), '0.0.0.0', () => console.log('ready'));
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;
const OUTSIDE_PORT = 7070;
/** A task's own resolver (its --dns server): a loopback address of the test's namespace, port 53. */
const OWN_RESOLVER = '127.77.0.53';

function network(id: string, name: string, vni: number, subnet: string, gateway: string, ingress = false): Network {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: '',
    UpdatedAt: '',
    Spec: { Name: name, DriverConfiguration: { Name: 'overlay' }, ...(ingress ? { Ingress: true } : {}) },
    DriverState: { Name: 'overlay', Options: { [VNI_OPTION]: String(vni) } },
    IPAMOptions: { Driver: { Name: 'default' }, Configs: [{ Subnet: subnet, Gateway: gateway }] },
  };
}

const BACKEND = network(`netbackend${process.pid}`, 'backend', 4301, '10.77.1.0/24', '10.77.1.1');
const OTHER = network(`netother${process.pid}`, 'other', 4302, '10.77.2.0/24', '10.77.2.1');
const INGRESS = network(`netingress${process.pid}`, 'ingress', 4303, '10.77.0.0/24', '10.77.0.1', true);

function task(id: string, serviceId: string, attachments: [Network, string][]): Task {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: '',
    UpdatedAt: '',
    Spec: { ContainerSpec: { Image: 'busybox' } },
    ServiceID: serviceId,
    Slot: 1,
    NodeID: '',
    Status: { Timestamp: '', State: 'assigned', Message: '' },
    DesiredState: 'running',
    NetworksAttachments: attachments.map(([n, a]) => ({ Network: n, Addresses: [a] })),
  };
}

// client on A (backend), web.1 on B (backend + ingress), web.2 on A (backend), outsider on A (other).
const CLIENT = task(`client${process.pid}`, 'svcclient', [[BACKEND, '10.77.1.10/24']]);
const WEB1 = task(`webone${process.pid}`, 'svcweb', [[BACKEND, '10.77.1.21/24'], [INGRESS, '10.77.0.21/24']]);
const WEB2 = task(`webtwo${process.pid}`, 'svcweb', [[BACKEND, '10.77.1.22/24']]);
const OUTSIDER = task(`outsider${process.pid}`, 'svcout', [[OTHER, '10.77.2.10/24']]);

function peer(t: Task, nodeAddr: string, networkId: string, running: boolean): NetworkPeerTask {
  const names: Record<string, string> = { svcclient: 'client', svcweb: 'web', svcout: 'out' };
  return {
    TaskID: t.ID,
    ServiceID: t.ServiceID,
    ServiceName: names[t.ServiceID]!,
    NodeID: nodeAddr === ADDR_A ? 'nodeA' : 'nodeB',
    NodeAddr: nodeAddr,
    Addresses: t.NetworksAttachments!.filter((a) => a.Network.ID === networkId).map((a) => a.Addresses[0]!),
    Running: running,
  };
}

function backendView(web2Running: boolean): NetworkPeers {
  return {
    ID: BACKEND.ID,
    Network: BACKEND,
    Tasks: [peer(CLIENT, ADDR_A, BACKEND.ID, true), peer(WEB1, ADDR_B, BACKEND.ID, true), peer(WEB2, ADDR_A, BACKEND.ID, web2Running)],
    Services: [
      { ServiceID: 'svcclient', ServiceName: 'client', EndpointMode: 'vip', VirtualIP: '10.77.1.3/24' },
      { ServiceID: 'svcweb', ServiceName: 'web', EndpointMode: 'vip', VirtualIP: '10.77.1.2/24', Aliases: ['www'] },
    ],
    Nodes: [],
  };
}

const INGRESS_VIEW: NetworkPeers = {
  ID: INGRESS.ID,
  Network: INGRESS,
  Tasks: [peer(WEB1, ADDR_B, INGRESS.ID, true)],
  Services: [{ ServiceID: 'svcweb', ServiceName: 'web', EndpointMode: 'vip', VirtualIP: '10.77.0.2/24', Ports: [{ Protocol: 'tcp', TargetPort: 8080, PublishedPort: 30080, PublishMode: 'ingress' }] }],
  Nodes: [
    { NodeID: 'nodeA', NodeAddr: ADDR_A, Addresses: ['10.77.0.250/24'] },
    { NodeID: 'nodeB', NodeAddr: ADDR_B, Addresses: ['10.77.0.251/24'] },
  ],
};

const OTHER_VIEW: NetworkPeers = { ID: OTHER.ID, Network: OTHER, Tasks: [peer(OUTSIDER, ADDR_A, OTHER.ID, true)], Services: [{ ServiceID: 'svcout', ServiceName: 'out', EndpointMode: 'vip', VirtualIP: '10.77.2.2/24' }], Nodes: [] };

/** Bounded poll (count and time) until `check` holds. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const paths = new Map<string, string>();

beforeAll(async () => {
  hostA = await lab.addNetns('ha');
  hostB = await lab.addNetns('hb');
  await lab.link(hostA, 'ul0', ADDR_A, hostB, 'ul0', ADDR_B, 24);
  tmp = await mkdtemp(join(tmpdir(), 'shoal-wn-'));
  hostResolvConf = join(tmp, 'resolv.conf');
  await writeFile(hostResolvConf, HOST_RESOLV_CONF);
  netA = new WorkerNetworks({ hostTag: TAG_A, nodeId: 'nodeA', hostNetns: hostA, upstreamResolvers: [], hostResolvConf });
  netB = new WorkerNetworks({ hostTag: TAG_B, nodeId: 'nodeB', hostNetns: hostB, upstreamResolvers: [], hostResolvConf });
  netA.setLocalAddress(ADDR_A);
  netB.setLocalAddress(ADDR_B);
  for (const [wn, t] of [[netA, CLIENT], [netB, WEB1], [netA, WEB2], [netA, OUTSIDER]] as const) {
    const config = await wn.prepareTask(t);
    expect(config).toBeDefined();
    paths.set(t.ID, config!.networkNamespacePath);
  }
  for (const wn of [netA, netB]) {
    wn.setView(backendView(true));
    wn.setView(INGRESS_VIEW);
  }
  netA.setView(OTHER_VIEW);
  await lab.startNameServer(paths.get(WEB1.ID)!, 8080, 'web.1');
  await lab.startNameServer(paths.get(WEB2.ID)!, 8080, 'web.2');
}, 60_000);

afterAll(async () => {
  await netA?.close().catch(() => undefined);
  await netB?.close().catch(() => undefined);
  await lab.cleanup();
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

describe('worker network manager', () => {
  it('gives each task a namespace with its addresses, the default route on the gateway bridge and a resolv.conf naming the overlay gateway', async () => {
    const config = await netA.prepareTask(CLIENT); // idempotent: the same namespace
    expect(config!.networkNamespacePath).toBe(paths.get(CLIENT.ID));
    expect(config!.resolvConf).toBe('nameserver 10.77.1.1\nsearch example.test\noptions ndots:0 edns0\n'); // the host's search domains and options
    const addrs = await run(['ip', '-o', '-4', 'addr', 'show'], { netns: paths.get(WEB1.ID)! });
    expect(addrs).toMatch(/eth0\s+inet 10\.77\.1\.21\/24/);
    expect(addrs).toMatch(/eth1\s+inet 10\.77\.0\.21\/24/);
    expect(addrs).toMatch(/eth2\s+inet 172\.18\.\d+\.\d+\/16/);
    const routes = await run(['ip', 'route', 'show'], { netns: paths.get(WEB1.ID)! });
    expect(routes).toMatch(/^default via 172\.18\.0\.1 dev eth2/m);
    expect(routes).toMatch(/^10\.77\.1\.0\/24 dev eth0/m); // the overlays stay on-link
    // `ingress` has no service discovery (as Docker): no resolver process in its sandbox.
    expect((await run(['ip', 'netns', 'pids', `shoal-${TAG_B}-n${INGRESS.ID.slice(0, 12)}`])).trim()).toBe('');
    expect((await run(['ip', 'netns', 'pids', `shoal-${TAG_B}-n${BACKEND.ID.slice(0, 12)}`])).trim()).not.toBe('');
  });

  it('every task reaches the outside world through the gateway bridge, seen as its node; not the other tasks through it; released → nothing left', async () => {
    // "The outside world": a server on the other host's address.
    await lab.startProgram(hostB, PEER_ADDRESS_SERVER, [String(OUTSIDE_PORT)]);
    await lab.startProgram(hostA, PEER_ADDRESS_SERVER, [String(OUTSIDE_PORT)]);
    // A task on no network (Docker: the default bridge) and one on `ingress` only (routing mesh).
    const plain: Task = { ...task(`plain${process.pid}`, 'svcplain', []), Spec: { ContainerSpec: { Image: 'busybox', DNSConfig: { Search: ['svc.test'] } } } };
    const ingressOnly = task(`ingonly${process.pid}`, 'svcing', [[INGRESS, '10.77.0.40/24']]);
    const pl = (await netA.prepareTask(plain))!;
    const io = (await netA.prepareTask(ingressOnly))!;
    // No embedded resolver for either: the host's nameservers without the loopback one (the task's
    // --dns-search replacing the host's search domains).
    expect(pl.resolvConf).toBe('nameserver 10.9.9.9\nsearch svc.test\noptions edns0\n');
    expect(io.resolvConf).toBe(TASK_RESOLV_CONF);
    expect(await run(['ip', 'route', 'show', 'default'], { netns: pl.networkNamespacePath })).toMatch(/via 172\.18\.0\.1 dev eth0/);
    expect(await run(['ip', '-o', 'link', 'show', 'lo'], { netns: pl.networkNamespacePath })).toMatch(/UP/);
    for (const from of [pl.networkNamespacePath, io.networkNamespacePath, paths.get(CLIENT.ID)!]) {
      expect(await lab.tcpRequests(from, ADDR_B, OUTSIDE_PORT, 1)).toEqual([ADDR_A]); // masqueraded
    }
    expect(await lab.tcpRequests(paths.get(WEB1.ID)!, ADDR_A, OUTSIDE_PORT, 1)).toEqual([ADDR_B]);
    // The overlay task still reaches its peer and the VIP.
    expect(await lab.tcpRequests(paths.get(CLIENT.ID)!, '10.77.1.21', 8080, 1)).toEqual(['web.1']);
    expect(new Set(await lab.tcpRequests(paths.get(CLIENT.ID)!, '10.77.1.2', 8080, 16))).toEqual(new Set(['web.1', 'web.2']));
    // The bridge's ports are isolated (Docker's docker_gwbridge has inter-container traffic off):
    // web.2's address there is not reachable from another task.
    const web2Gw = /eth1\s+inet (172\.18\.\d+\.\d+)\//.exec(await run(['ip', '-o', '-4', 'addr', 'show'], { netns: paths.get(WEB2.ID)! }))?.[1];
    expect(web2Gw).toBeDefined();
    expect(await lab.tcpRequests(hostA, web2Gw!, 8080, 1)).toEqual(['web.2']); // the host reaches it
    expect(await lab.tcpRequests(pl.networkNamespacePath, web2Gw!, 8080, 1, 1000)).not.toEqual(['web.2']);

    // Tasks on no network are prepared beside one another (not one at a time): distinct addresses, each with its way out.
    const batch = [1, 2, 3].map((i) => task(`par${i}x${process.pid}`, 'svcpar', []));
    const configs = await Promise.all(batch.map((t) => netA.prepareTask(t)));
    const addrs = await Promise.all(configs.map(async (c) => /eth0\s+inet (\S+)\//.exec(await run(['ip', '-o', '-4', 'addr', 'show'], { netns: c!.networkNamespacePath }))?.[1]));
    expect(new Set(addrs).size).toBe(3);
    expect(await lab.tcpRequests(configs[2]!.networkNamespacePath, ADDR_B, OUTSIDE_PORT, 1)).toEqual([ADDR_A]);
    await Promise.all(batch.map((t) => netA.releaseTask(t.ID)));

    const hostLinks = async (): Promise<number> => ((await run(['ip', '-o', 'link', 'show', 'master', 'shoal_gwbridge'], { netns: hostA })).match(/^\d+:/gm) ?? []).length;
    const before = await hostLinks();
    await netA.releaseTask(plain.ID);
    await netA.releaseTask(ingressOnly.ID);
    expect(await hostLinks()).toBe(before - 2);
    expect(await run(['ip', 'netns', 'list'])).not.toMatch(new RegExp(`-t(${plain.ID}|${ingressOnly.ID})`));
  });

  it('tasks on two hosts reach each other, the VIP reaches every running backend, names resolve', async () => {
    const client = paths.get(CLIENT.ID)!;
    await eventually('web.1 across hosts', async () => (await lab.tcpRequests(client, '10.77.1.21', 8080, 1, 1000))[0] === 'web.1');
    const seen = new Set(await lab.tcpRequests(client, '10.77.1.2', 8080, 24));
    expect(seen).toEqual(new Set(['web.1', 'web.2']));
    const replies = await lab.dnsExchange(client, '10.77.1.1', 53, [buildQuery(1, 'web'), buildQuery(2, 'tasks.web'), buildQuery(3, 'www'), buildQuery(4, 'out')]);
    const [web, tasks, www, out] = replies.map((r) => parseResponse(r!));
    expect(web!.addresses).toEqual(['10.77.1.2']);
    expect([...tasks!.addresses].sort()).toEqual(['10.77.1.21', '10.77.1.22']);
    expect(www!.addresses).toEqual(['10.77.1.2']);
    expect(out!.rcode).toBe(3); // NXDOMAIN: not on a shared network
  });

  it("a task's --dns servers answer its names outside the cluster, its --dns-search and --dns-option are in its resolv.conf; other tasks' names go to the host's resolvers", async () => {
    // The task's own resolver: a real one on a loopback address of the daemon's namespace (the
    // embedded resolver forwards from the daemon; here the hosts' resolvers are none: SERVFAIL).
    const own = dgram.createSocket('udp4');
    own.on('message', (msg, rinfo) => own.send(buildResponse(msg, parseQuery(msg), { rcode: 0, addresses: ['192.0.2.7'] }), rinfo.port, rinfo.address));
    await new Promise<void>((resolve, reject) => {
      own.once('error', reject);
      own.bind(53, OWN_RESOLVER, resolve);
    });
    const withDns: Task = { ...task(`owndns${process.pid}`, 'svcclient', [[BACKEND, '10.77.1.30/24']]), Spec: { ContainerSpec: { Image: 'busybox', DNSConfig: { Nameservers: [OWN_RESOLVER], Search: ['corp.test'], Options: ['timeout:1'] } } } };
    try {
      const config = (await netA.prepareTask(withDns))!;
      expect(config.resolvConf).toBe('nameserver 10.77.1.1\nsearch corp.test\noptions ndots:0 timeout:1\n');
      const [mine] = (await lab.dnsExchange(config.networkNamespacePath, '10.77.1.1', 53, [buildQuery(1, 'example.com')])).map((r) => parseResponse(r!));
      expect(mine!.addresses).toEqual(['192.0.2.7']);
      const [theirs] = (await lab.dnsExchange(paths.get(CLIENT.ID)!, '10.77.1.1', 53, [buildQuery(2, 'example.com')])).map((r) => parseResponse(r!));
      expect(theirs!.rcode).toBe(2); // SERVFAIL: the hosts have no resolver a task can use here
      // Cluster names are still ours for it.
      const [web] = (await lab.dnsExchange(config.networkNamespacePath, '10.77.1.1', 53, [buildQuery(3, 'web')])).map((r) => parseResponse(r!));
      expect(web!.addresses).toEqual(['10.77.1.2']);
    } finally {
      await netA.releaseTask(withDns.ID);
      own.close();
    }
  });

  it('scaling updates the backends: a task no longer running gets no VIP traffic', async () => {
    const client = paths.get(CLIENT.ID)!;
    for (const wn of [netA, netB]) wn.setView(backendView(false));
    await eventually('web.2 out of the VIP', async () => new Set(await lab.tcpRequests(client, '10.77.1.2', 8080, 12)).size === 1);
    expect(new Set(await lab.tcpRequests(client, '10.77.1.2', 8080, 12))).toEqual(new Set(['web.1']));
    for (const wn of [netA, netB]) wn.setView(backendView(true));
    await eventually('web.2 back in the VIP', async () => new Set(await lab.tcpRequests(client, '10.77.1.2', 8080, 24)).size === 2);
  });

  it('a task on another network cannot reach the service', async () => {
    const outsider = paths.get(OUTSIDER.ID)!;
    const [direct, vip] = [await lab.tcpRequests(outsider, '10.77.1.21', 8080, 1, 1000), await lab.tcpRequests(outsider, '10.77.1.2', 8080, 1, 1000)];
    expect(direct[0]).not.toBe('web.1');
    expect(vip[0]).not.toMatch(/^web/);
  });

  it('a published port on the host without the task reaches it (routing mesh), from that host and from another', async () => {
    await eventually('the routing mesh on A', async () => (await lab.tcpRequests(hostA, ADDR_A, 30080, 1, 1000))[0] === 'web.1');
    expect(await lab.tcpRequests(hostB, ADDR_A, 30080, 3)).toEqual(['web.1', 'web.1', 'web.1']);
    expect(await lab.tcpRequests(hostA, ADDR_B, 30080, 1)).toEqual(['web.1']);
    // No running task: the port refuses.
    for (const wn of [netA, netB]) wn.setView({ ...INGRESS_VIEW, Tasks: [{ ...INGRESS_VIEW.Tasks[0]!, Running: false }] });
    await eventually('the port to refuse', async () => (await lab.tcpRequests(hostB, ADDR_A, 30080, 1, 1000))[0] === 'ECONNREFUSED');
  });

  it("host-mode published ports: the node's port reaches its task (from another host and the node itself), only there; released → refused, nothing left", async () => {
    const hostPort = { Protocol: 'tcp', TargetPort: 8080, PublishedPort: 8081, PublishMode: 'host' } as const;
    const hybridPort = { Protocol: 'tcp', TargetPort: 8080, PublishedPort: 8082, PublishMode: 'host' } as const;
    // A task on no overlay network, and one on `backend` that also publishes in host mode.
    const plain: Task = { ...task(`hostport${process.pid}`, 'svchp', []), Endpoint: { Ports: [hostPort] } };
    const hybrid: Task = { ...task(`hybrid${process.pid}`, 'svchy', [[BACKEND, '10.77.1.30/24']]), Endpoint: { Ports: [hybridPort, { Protocol: 'tcp', TargetPort: 9, PublishedPort: 30009, PublishMode: 'ingress' }] } };
    const hp = await netA.prepareTask(plain);
    const hy = await netA.prepareTask(hybrid);
    // What the agent reports as Status.PortStatus: the host-mode ports only.
    expect(hp!.ports).toEqual([hostPort]);
    expect(hy!.ports).toEqual([hybridPort]);
    expect(hp!.resolvConf).toBe(TASK_RESOLV_CONF);
    expect(hy!.resolvConf).toBe('nameserver 10.77.1.1\nsearch example.test\noptions ndots:0 edns0\n');
    await lab.startNameServer(hp!.networkNamespacePath, 8080, 'hp.1');
    await lab.startNameServer(hy!.networkNamespacePath, 8080, 'hy.1');
    expect(await lab.tcpRequests(hostB, ADDR_A, 8081, 2)).toEqual(['hp.1', 'hp.1']);
    expect(await lab.tcpRequests(hostA, ADDR_A, 8081, 1)).toEqual(['hp.1']);
    expect(await lab.tcpRequests(hostB, ADDR_A, 8082, 1)).toEqual(['hy.1']);
    // Published on the task's node only (unlike the routing mesh).
    expect(await lab.tcpRequests(hostA, ADDR_B, 8081, 1, 1000)).toEqual(['ECONNREFUSED']);
    // The default route goes to the gateway bridge; the overlay stays on-link for the other tasks.
    expect(await run(['ip', 'route', 'show', 'default'], { netns: hy!.networkNamespacePath })).toMatch(/via 172\.18\.0\.1 dev eth1/);
    expect(await lab.tcpRequests(paths.get(CLIENT.ID)!, '10.77.1.30', 8080, 1)).toEqual(['hy.1']);
    // The gateway's MAC is fixed (02:42:<172.18.0.1>), not its lowest port's.
    expect(await run(['ip', 'link', 'show', 'shoal_gwbridge'], { netns: hostA })).toContain('link/ether 02:42:ac:12:00:01 ');

    await netA.releaseTask(plain.ID);
    expect(await lab.tcpRequests(hostB, ADDR_A, 8081, 1, 1000)).toEqual(['ECONNREFUSED']);
    expect(await lab.tcpRequests(hostB, ADDR_A, 8082, 1)).toEqual(['hy.1']);
    await netA.releaseTask(hybrid.ID);
    expect(await lab.tcpRequests(hostB, ADDR_A, 8082, 1, 1000)).toEqual(['ECONNREFUSED']);
    // Their veths and DNAT rules went with them (the bridge stays for the other tasks, as docker_gwbridge).
    const links = await run(['ip', '-o', 'link', 'show'], { netns: hostA });
    for (const t of [plain, hybrid]) expect(links).not.toContain(gatewayVethName(t.ID));
    expect(await run(['iptables-save', '-t', 'nat'], { netns: hostA })).not.toMatch(/DNAT.*172\.18\./);
  });

  it('a network manager restarted after a crash rebuilds the sandboxes and re-attaches the surviving tasks', async () => {
    for (const wn of [netA, netB]) wn.setView(INGRESS_VIEW);
    // A task on no network survives too.
    const loner = task(`loner${process.pid}`, 'svcloner', []);
    const lonerPath = (await netA.prepareTask(loner))!.networkNamespacePath;
    // Host A's daemon "dies" (its objects are abandoned, its sandboxes and resolvers stay behind);
    // a new one starts on the same host, learns its address, and gets the tasks and views again.
    const restarted = new WorkerNetworks({ hostTag: TAG_A, nodeId: 'nodeA', hostNetns: hostA, upstreamResolvers: [] });
    const abandoned = netA;
    netA = restarted;
    void abandoned; // never closed: what a SIGKILL leaves
    restarted.setLocalAddress(ADDR_A);
    for (const t of [CLIENT, WEB2, OUTSIDER]) expect((await restarted.prepareTask(t))!.networkNamespacePath).toBe(paths.get(t.ID));
    expect((await restarted.prepareTask(loner))!.networkNamespacePath).toBe(lonerPath);
    expect((await run(['ip', '-o', 'link', 'show'], { netns: lonerPath })).match(/eth\d+@/g)).toHaveLength(1);
    expect(await lab.tcpRequests(lonerPath, ADDR_B, OUTSIDE_PORT, 1)).toEqual([ADDR_A]);
    await restarted.releaseTask(loner.ID);
    restarted.setView(backendView(true));
    restarted.setView(INGRESS_VIEW);
    restarted.setView(OTHER_VIEW);
    const client = paths.get(CLIENT.ID)!;
    await eventually('both backends through the VIP after the restart', async () => new Set(await lab.tcpRequests(client, '10.77.1.2', 8080, 16, 1000)).size === 2);
    const [web] = (await lab.dnsExchange(client, '10.77.1.1', 53, [buildQuery(9, 'web')])).map((r) => parseResponse(r!));
    expect(web!.addresses).toEqual(['10.77.1.2']);
    await eventually('the routing mesh on A after the restart', async () => (await lab.tcpRequests(hostB, ADDR_A, 30080, 1, 1000))[0] === 'web.1');
    // One sandbox per network, one veth per task: nothing doubled by the rebuild.
    const ours = (await run(['ip', 'netns', 'list'])).split('\n').filter((l) => l.startsWith(`shoal-${TAG_A}-n`));
    expect(ours).toHaveLength(3);
    // (eth0 on `backend`, eth1 on the gateway bridge)
    expect((await run(['ip', '-o', 'link', 'show'], { netns: client })).match(/eth\d+@/g)).toHaveLength(2);
    expect(await lab.tcpRequests(client, ADDR_B, OUTSIDE_PORT, 1)).toEqual([ADDR_A]);
  }, 60_000);

  it('releasing tasks and closing leaves no namespace, link or rule', async () => {
    await netA.releaseTask(OUTSIDER.ID);
    expect(await run(['ip', 'netns', 'list'])).not.toContain(`shoal-${TAG_A}-n${OTHER.ID.slice(0, 12)}`);
    for (const wn of [netA, netB]) wn.removeView(INGRESS.ID);
    for (const [wn, t] of [[netA, CLIENT], [netB, WEB1], [netA, WEB2]] as const) await wn.releaseTask(t.ID);
    await netA.close();
    await netB.close();
    const netns = await run(['ip', 'netns', 'list']);
    expect(netns).not.toContain(`shoal-${TAG_A}-`);
    expect(netns).not.toContain(`shoal-${TAG_B}-`);
    for (const host of [hostA, hostB]) {
      expect(await run(['ip', '-o', 'link', 'show'], { netns: host })).not.toMatch(/shv|shi0|shoal_gwbridge|sg[0-9a-f]{11}/);
      expect(await run(['iptables-save'], { netns: host })).not.toContain('SHOAL');
    }
  });
});

describe('worker network manager before the node address is known', () => {
  it('a prepare waits for it, fails with ERR_NETWORK_NOT_READY after readyTimeoutMs, and a release cancels a waiting prepare; a task on no network does not wait', async () => {
    const tag = `wnc${process.pid}`;
    const early = new WorkerNetworks({ hostTag: tag, nodeId: 'nodeC', hostNetns: hostA, upstreamResolvers: [], readyTimeoutMs: 300, hostResolvConf });
    try {
      await expect(early.prepareTask(CLIENT)).rejects.toMatchObject({ code: 'ERR_NETWORK_NOT_READY' });
      const plain = task(`early${process.pid}`, 'svcplain', []);
      const config = await early.prepareTask(plain);
      expect(await lab.tcpRequests(config!.networkNamespacePath, ADDR_B, OUTSIDE_PORT, 1)).toEqual([ADDR_A]);
      await early.releaseTask(plain.ID);
      const late = new WorkerNetworks({ hostTag: tag, nodeId: 'nodeC', hostNetns: hostA, upstreamResolvers: [] });
      try {
        const pending = late.prepareTask(WEB2);
        await late.releaseTask(WEB2.ID);
        late.setLocalAddress(ADDR_A);
        await expect(pending).rejects.toMatchObject({ code: 'ERR_NETWORK_CLOSED' });
        expect(await run(['ip', 'netns', 'list'])).not.toContain(`shoal-${tag}-`);
      } finally {
        await late.close();
      }
    } finally {
      await early.close();
    }
  });
});
