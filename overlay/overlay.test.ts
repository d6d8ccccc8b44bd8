// The overlay data plane on the real kernel: two "hosts" (network namespaces joined by a veth
// underlay), each with an overlay sandbox and "containers" (namespaces) attached, as the executor
// and agent would drive it. Needs root, iproute2, iptables, util-linux (nsenter).

import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildQuery, parseResponse, RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_AAAA } from './dns/message.js';
import { EncryptedOverlayUnsupportedError, OverlayDataPlane, type OverlayNetwork, type ServiceSpec } from './index.js';
import { run } from './exec.js';
import { NetnsLab } from './testing/netns-lab.js';

const pid = process.pid;
const lab = new NetnsLab(`shoaltest-ov${pid}`);
const tagA = `a${pid}`;
const tagB = `b${pid}`;
const UNDERLAY_A = '172.31.250.1';
const UNDERLAY_B = '172.31.250.2';
const PORT = 8080;
const N1 = { id: `n1net${pid}aaaaaaaaaaaaa`, name: 'front', vni: 4097 + (pid % 1000), subnet: '10.77.1.0/24', gateway: '10.77.1.1' };
const N2 = { id: `n2net${pid}bbbbbbbbbbbbb`, name: 'back', vni: 5097 + (pid % 1000), subnet: '10.77.2.0/24', gateway: '10.77.2.1' };
const VIP = '10.77.1.100';
const API_VIP = '10.77.2.100';

let hostA = '';
let hostB = '';
const ctr: Record<string, string> = {};
let planeA: OverlayDataPlane;
let planeB: OverlayDataPlane;
let aN1: OverlayNetwork;
let aN2: OverlayNetwork;
let bN1: OverlayNetwork;
let upstream: dgram.Socket | undefined;
let upstreamPort = 0;
let upstreamTcp: net.Server | undefined;

// Where each container sits on N1 (cA3 is only on N2).
const ips = { cA1: '10.77.1.2', cA2: '10.77.1.3', cB1: '10.77.1.4', cB2: '10.77.1.5' } as const;

function web(backends: readonly string[]): ServiceSpec {
  return { id: 'svc-web', name: 'web', endpointMode: 'vip', vip: VIP, backends };
}

type Ask = readonly [name: string, type?: number];

/** Asks `server` from inside `from` (one process for all questions) and returns rcode and addresses per question. */
interface Answer {
  readonly rcode: number;
  readonly addresses: readonly string[];
  readonly truncated: boolean;
  readonly sizeBytes: number;
}

/** Asks `server` from inside `from` (one process for all questions, over UDP or one TCP connection): each answer. */
async function dnsAnswers(from: string, server: string, asks: readonly Ask[], transport: 'udp' | 'tcp' = 'udp'): Promise<Answer[]> {
  const replies = await lab.dnsExchange(from, server, 53, asks.map(([name, type], i) => buildQuery(4200 + i, name, type)), 3_000, transport);
  return replies.map((reply, i) => {
    if (reply === undefined) throw new Error(`no DNS answer for ${asks[i]![0]} over ${transport}`);
    const { id, rcode, addresses, truncated } = parseResponse(reply);
    expect(id).toBe(4200 + i);
    return { rcode, addresses, truncated, sizeBytes: reply.length };
  });
}

/** rcode and addresses per question. */
async function dns(from: string, server: string, asks: readonly Ask[], transport: 'udp' | 'tcp' = 'udp'): Promise<Array<{ rcode: number; addresses: readonly string[] }>> {
  return (await dnsAnswers(from, server, asks, transport)).map(({ rcode, addresses }) => ({ rcode, addresses }));
}

async function iptablesSave(netns: string): Promise<string> {
  return run(['iptables-save'], { netns });
}

beforeAll(async () => {
  // A fake upstream resolver on loopback: the host's resolvers stand-in for forwarded names.
  upstream = dgram.createSocket('udp4');
  upstream.on('message', (msg, rinfo) => {
    const reply = Buffer.from(msg);
    reply.writeUInt16BE(0x8180, 2); // response, RD, RA, NOERROR
    reply.writeUInt16BE(1, 6);
    const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    upstream!.send(Buffer.concat([reply, rr]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => upstream!.bind(0, '127.0.0.1', resolve));
  upstreamPort = upstream.address().port;
  // …and on TCP at the same port (a truncated answer's retry is forwarded over TCP).
  upstreamTcp = net.createServer((conn) => {
    conn.on('error', () => conn.destroy());
    conn.once('data', (msg: Buffer) => {
      const reply = Buffer.from(msg.subarray(2));
      reply.writeUInt16BE(0x8180, 2);
      reply.writeUInt16BE(1, 6);
      const body = Buffer.concat([reply, Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7])]);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(body.length, 0);
      conn.end(Buffer.concat([len, body]));
    });
  });
  await new Promise<void>((resolve, reject) => {
    upstreamTcp!.once('error', reject);
    upstreamTcp!.listen(upstreamPort, '127.0.0.1', resolve);
  });

  hostA = await lab.addNetns('hA');
  hostB = await lab.addNetns('hB');
  await lab.link(hostA, 'ul0', UNDERLAY_A, hostB, 'ul0', UNDERLAY_B, 24);
  for (const name of ['cA1', 'cA2', 'cA3', 'cB1', 'cB2']) ctr[name] = await lab.addNetns(name);

  const resolvers = [{ address: '127.0.0.1', port: upstreamPort }];
  planeA = new OverlayDataPlane({ hostTag: tagA, underlayAddress: UNDERLAY_A, underlayInterface: 'ul0', hostNetns: hostA, upstreamResolvers: resolvers });
  planeB = new OverlayDataPlane({ hostTag: tagB, underlayAddress: UNDERLAY_B, underlayInterface: 'ul0', hostNetns: hostB, upstreamResolvers: resolvers });
  aN1 = await planeA.createNetwork(N1);
  aN2 = await planeA.createNetwork(N2);
  bN1 = await planeB.createNetwork(N1);

  await aN1.attach({ id: 'tA1', containerNetns: ctr.cA1!, ifName: 'eth0', ip: ips.cA1 });
  await aN1.attach({ id: 'tA2', containerNetns: ctr.cA2!, ifName: 'eth0', ip: ips.cA2 });
  await aN2.attach({ id: 'tA2b', containerNetns: ctr.cA2!, ifName: 'eth1', ip: '10.77.2.3', defaultRoute: false });
  await aN2.attach({ id: 'tA3', containerNetns: ctr.cA3!, ifName: 'eth0', ip: '10.77.2.2' });
  await bN1.attach({ id: 'tB1', containerNetns: ctr.cB1!, ifName: 'eth0', ip: ips.cB1 });
  await bN1.attach({ id: 'tB2', containerNetns: ctr.cB2!, ifName: 'eth0', ip: ips.cB2 });

  const everyone = [
    { ip: ips.cA1, hostAddr: UNDERLAY_A },
    { ip: ips.cA2, hostAddr: UNDERLAY_A },
    { ip: ips.cB1, hostAddr: UNDERLAY_B },
    { ip: ips.cB2, hostAddr: UNDERLAY_B },
  ];
  await aN1.setPeers(everyone);
  await bN1.setPeers(everyone);
  for (const name of ['cA2', 'cB1', 'cB2'] as const) await lab.startNameServer(ctr[name]!, PORT, name);
  await lab.startNameServer(ctr.cA3!, PORT, 'cA3');
  const backends = [ips.cA2, ips.cB1, ips.cB2];
  await aN1.setServices([web(backends)]);
  await bN1.setServices([web(backends)]);
  await aN2.setServices([{ id: 'svc-api', name: 'api', endpointMode: 'vip', vip: API_VIP, backends: ['10.77.2.2'], aliases: ['api-alias'] }]);
});

afterAll(async () => {
  const results = await Promise.allSettled([planeA?.close(), planeB?.close()]);
  await lab.cleanup();
  upstream?.close();
  upstreamTcp?.close();
  for (const r of results) if (r.status === 'rejected') throw r.reason;
});

describe('overlay data plane across two hosts', () => {
  it('containers on different hosts ping each other through the VXLAN', async () => {
    const out = await run(['ping', '-c', '2', '-i', '0.2', '-W', '2', ips.cB1], { netns: ctr.cA1 });
    expect(out).toMatch(/2 received/);
  });

  it('a TCP connection crosses hosts', async () => {
    expect(await lab.tcpRequests(ctr.cA1!, ips.cB1, PORT)).toEqual(['cB1']);
    expect(await lab.tcpRequests(ctr.cB2!, ips.cA2, PORT)).toEqual(['cA2']);
  });

  it('lays out the sandbox as designed: vxlan socket in the host netns, MTU 1450, default route via the gateway', async () => {
    const vxlan = await run(['ip', '-d', 'link', 'show', 'vxlan0'], { netns: aN1.sandboxPath });
    // `dev` is printed as the sandbox's interface of the same index: the underlay lives in the host netns.
    expect(vxlan).toMatch(new RegExp(`vxlan id ${N1.vni} local ${UNDERLAY_A} `));
    expect(vxlan).toContain(`link-netns ${hostA.replace('/run/netns/', '')}`);
    expect(vxlan).toMatch(/dstport 4789/);
    expect(vxlan).toMatch(/nolearning/);
    expect(vxlan).toMatch(/proxy/);
    expect(vxlan).toMatch(/mtu 1450/);
    expect(await run(['ss', '-uln'], { netns: hostA })).toMatch(/:4789\b/);
    expect(await run(['ss', '-uln'], { netns: aN1.sandboxPath })).not.toMatch(/:4789\b/);
    expect(await run(['ip', 'link', 'show', 'eth0'], { netns: ctr.cA1 })).toMatch(/mtu 1450/);
    expect(await run(['ip', 'route', 'show', 'default'], { netns: ctr.cA1 })).toMatch(/default via 10\.77\.1\.1 dev eth0/);
    // The bridge keeps the gateway's own MAC whatever its ports' MACs (a bridge left alone takes the
    // lowest port MAC, so an endpoint joining would change the gateway's MAC under the containers).
    expect(await run(['ip', 'link', 'show', 'br0'], { netns: aN1.sandboxPath })).toContain('link/ether 02:42:0a:4d:01:01 ');
    // The second network of cA2 adds no second default route.
    expect((await run(['ip', 'route', 'show', 'default'], { netns: ctr.cA2 })).trim().split('\n')).toHaveLength(1);
  });

  it('the VIP balances over every backend, on both hosts', async () => {
    const fromA = new Set(await lab.tcpRequests(ctr.cA1!, VIP, PORT, 40));
    expect(fromA).toEqual(new Set(['cA2', 'cB1', 'cB2']));
    const fromB = new Set(await lab.tcpRequests(ctr.cB1!, VIP, PORT, 40));
    expect(fromB).toEqual(new Set(['cA2', 'cB1', 'cB2']));
  });

  it('removing a backend takes it out of the VIP', async () => {
    await aN1.setServices([web([ips.cB1, ips.cB2])]);
    const seen = await lab.tcpRequests(ctr.cA1!, VIP, PORT, 30);
    expect(new Set(seen)).toEqual(new Set(['cB1', 'cB2']));
    const nat = await iptablesSave(ctr.cA1!);
    expect(nat).not.toContain(ips.cA2);
  });

  it('a VIP with no backends refuses connections instead of dropping them', async () => {
    await aN1.setServices([web([])]);
    expect(await lab.tcpRequests(ctr.cA1!, VIP, PORT, 2)).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
    await aN1.setServices([web([ips.cA2, ips.cB1, ips.cB2])]);
    expect(new Set(await lab.tcpRequests(ctr.cA1!, VIP, PORT, 30))).toEqual(new Set(['cA2', 'cB1', 'cB2']));
  });

  it('DNS: web → VIP, tasks.web → every task; other networks stay invisible; other names go upstream', async () => {
    const gw = N1.gateway;
    const fromA1 = await dns(ctr.cA1!, gw, [['web'], ['tasks.web'], ['web', TYPE_AAAA], ['api'], ['tasks.api'], ['www.example.test']]);
    expect(fromA1[0]).toEqual({ rcode: RCODE_NOERROR, addresses: [VIP] });
    expect(fromA1[1]!.rcode).toBe(RCODE_NOERROR);
    expect(new Set(fromA1[1]!.addresses)).toEqual(new Set([ips.cA2, ips.cB1, ips.cB2]));
    expect(fromA1[2]).toEqual({ rcode: RCODE_NOERROR, addresses: [] });
    // `api` lives on N2: cA1 (N1 only) must not see it; cA3 (N2) and cA2 (N1 + N2) do.
    expect(fromA1[3]!.rcode).toBe(RCODE_NXDOMAIN);
    expect(fromA1[4]!.rcode).toBe(RCODE_NXDOMAIN);
    // Names not ours are forwarded to the host's resolvers (here a fake one on loopback).
    expect(fromA1[5]).toEqual({ rcode: RCODE_NOERROR, addresses: ['192.0.2.7'] });
    expect(await dns(ctr.cB2!, gw, [['WEB.']])).toEqual([{ rcode: RCODE_NOERROR, addresses: [VIP] }]);
    const fromA3 = await dns(ctr.cA3!, N2.gateway, [['api'], ['api-alias'], ['web']]);
    expect(fromA3.slice(0, 2)).toEqual([{ rcode: RCODE_NOERROR, addresses: [API_VIP] }, { rcode: RCODE_NOERROR, addresses: [API_VIP] }]);
    expect(fromA3[2]!.rcode).toBe(RCODE_NXDOMAIN);
    // cA2 is on both networks: its resolver (on N1) answers for N2's services too.
    expect(await dns(ctr.cA2!, gw, [['api']])).toEqual([{ rcode: RCODE_NOERROR, addresses: [API_VIP] }]);
    // And the container can use what it resolved: the api VIP from cA2 over its second network.
    expect(await lab.tcpRequests(ctr.cA2!, API_VIP, PORT)).toEqual(['cA3']);
    // cA1 is not on N2: no route to it at all.
    expect(await lab.tcpRequests(ctr.cA1!, '10.77.2.2', PORT, 1, 1_000)).not.toEqual(['cA3']);
  });

  it('DNS over TCP: the same answers; a UDP answer too big for 512 bytes is cut and flagged TC, TCP gives all of it', async () => {
    const gw = N1.gateway;
    const asks: Ask[] = [['web'], ['tasks.web'], ['web', TYPE_AAAA], ['api'], ['www.example.test']];
    const overTcp = await dns(ctr.cA1!, gw, asks, 'tcp');
    expect(overTcp[0]).toEqual({ rcode: RCODE_NOERROR, addresses: [VIP] });
    expect(new Set(overTcp[1]!.addresses)).toEqual(new Set([ips.cA2, ips.cB1, ips.cB2]));
    expect(overTcp[2]).toEqual({ rcode: RCODE_NOERROR, addresses: [] });
    expect(overTcp[3]!.rcode).toBe(RCODE_NXDOMAIN);
    // Forwarded over TCP to the host's resolver (the fake one also listens on TCP).
    expect(overTcp[4]).toEqual({ rcode: RCODE_NOERROR, addresses: ['192.0.2.7'] });
    // A dnsrr service with 60 tasks: tasks.many does not fit a classic UDP answer.
    const many = Array.from({ length: 60 }, (_, i) => `10.77.1.${100 + i}`);
    await aN1.setServices([web([ips.cA2, ips.cB1, ips.cB2]), { id: 'svc-many', name: 'many', endpointMode: 'dnsrr', backends: many }]);
    try {
      const [udp] = await dnsAnswers(ctr.cA1!, gw, [['tasks.many']]);
      expect(udp!.truncated).toBe(true);
      expect(udp!.sizeBytes).toBeLessThanOrEqual(512);
      expect(udp!.addresses.length).toBeGreaterThan(0);
      expect(udp!.addresses.length).toBeLessThan(60);
      const [tcp, rr] = await dnsAnswers(ctr.cA1!, gw, [['tasks.many'], ['many']], 'tcp');
      for (const a of [tcp!, rr!]) {
        expect(a.truncated).toBe(false);
        expect([...a.addresses].sort()).toEqual([...many].sort());
      }
    } finally {
      await aN1.setServices([web([ips.cA2, ips.cB1, ips.cB2])]);
    }
  });

  it('setPeers changes only what changed', async () => {
    const base = [
      { ip: ips.cB1, hostAddr: UNDERLAY_B },
      { ip: ips.cB2, hostAddr: UNDERLAY_B },
    ];
    expect(await aN1.setPeers(base)).toEqual({ fdbAdded: 0, fdbRemoved: 0, neighboursAdded: 0, neighboursRemoved: 0 });
    expect(await aN1.setPeers(base.slice(0, 1))).toEqual({ fdbAdded: 0, fdbRemoved: 1, neighboursAdded: 0, neighboursRemoved: 1 });
    const fdb = await run(['bridge', 'fdb', 'show', 'dev', 'vxlan0'], { netns: aN1.sandboxPath });
    expect(fdb).toContain('02:42:0a:4d:01:04 dst 172.31.250.2');
    expect(fdb).not.toContain('02:42:0a:4d:01:05 dst');
    expect(await aN1.setPeers(base)).toEqual({ fdbAdded: 1, fdbRemoved: 0, neighboursAdded: 1, neighboursRemoved: 0 });
    expect(await lab.tcpRequests(ctr.cA1!, ips.cB2, PORT)).toEqual(['cB2']);
  });

  it('refuses an encrypted overlay, saying why, and creates nothing', async () => {
    const spec = { id: `encnet${pid}ccccccccccccc`, name: 'secret', vni: 6097, subnet: '10.77.9.0/24', gateway: '10.77.9.1', options: { encrypted: '' } };
    const err = await planeA.createNetwork(spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EncryptedOverlayUnsupportedError);
    expect((err as Error).message).toMatch(/IPsec ESP.*WireGuard/);
    expect(await run(['ip', 'netns', 'list'])).not.toContain(`encnet${pid}`);
  });

  it('detach removes the veth and the network rules from the container', async () => {
    await bN1.detach('tB2');
    expect(await run(['ip', '-o', 'link', 'show'], { netns: ctr.cB2 })).not.toContain('eth0');
    expect(await iptablesSave(ctr.cB2!)).not.toContain('SHOAL-');
    expect(await iptablesSave(ctr.cB1!)).toContain('SHOAL-VIP-');
  });

  it('remove() leaves no namespace, link or chain', async () => {
    const sandbox = bN1.sandbox;
    await planeB.removeNetwork(N1.id);
    expect(await run(['ip', 'netns', 'list'])).not.toContain(sandbox);
    expect(await run(['ip', '-o', 'link', 'show'], { netns: hostB })).not.toMatch(/vxlan|shv/);
    expect(await run(['ip', '-o', 'link', 'show'], { netns: ctr.cB1 })).not.toContain('eth0');
    expect(await iptablesSave(ctr.cB1!)).not.toContain('SHOAL-');
  });

  it('reconcile() after a crash removes sandboxes, stranded links, chains and leftover processes', async () => {
    // The daemon "crashes": its resolvers die with it, the kernel state stays. Add the worst
    // leftovers: a process holding a sandbox, and a vxlan stranded in the host netns.
    await planeA.dns.close();
    await lab.startProgram(aN1.sandboxPath, "console.log('ready'); setInterval(() => {}, 1000);", []);
    await run(['ip', 'link', 'add', 'shv7777', 'type', 'vxlan', 'id', '7777', 'dstport', '4789', 'local', UNDERLAY_A, 'dev', 'ul0'], { netns: hostA });

    const restarted = new OverlayDataPlane({ hostTag: tagA, underlayAddress: UNDERLAY_A, underlayInterface: 'ul0', hostNetns: hostA, upstreamResolvers: [] });
    // Still expected networks survive a reconcile.
    const keep = await restarted.reconcile({ networkIds: [N1.id, N2.id], containerNetns: Object.values(ctr) });
    expect(keep.namespaces).toEqual([]);
    expect(keep.links).toEqual(['shv7777']);
    expect(await run(['ip', 'netns', 'list'])).toContain(aN1.sandbox);

    const report = await restarted.reconcile({ networkIds: [], containerNetns: Object.values(ctr) });
    expect([...report.namespaces].sort()).toEqual([aN1.sandbox, aN2.sandbox].sort());
    expect(report.chains.length).toBeGreaterThan(0);
    expect(await run(['ip', 'netns', 'list'])).not.toContain(`shoal-${tagA}-`);
    expect(await run(['ip', '-o', 'link', 'show'], { netns: hostA })).not.toMatch(/vxlan|shv/);
    for (const path of Object.values(ctr)) {
      expect(await iptablesSave(path)).not.toContain('SHOAL-');
      expect(await run(['ip', '-o', 'link', 'show'], { netns: path })).not.toMatch(/eth\d/);
    }
    await restarted.close();
  });
});
