// `shoal network …` and the real docker CLI's `docker network …` against one shoald (swarm plugin,
// unix socket, manager on loopback port 0), after `shoal swarm init` with a custom default
// address pool: ingress takes the pool's first subnet; created networks the next ones or their
// --subnet; ls/inspect show Docker's shapes; --opt encrypted and overlapping subnets are refused
// with nothing created; `docker service create -p` gets its ports and VIPs (a taken port refused,
// naming the holder); rm is refused while a service uses the network.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTestDaemon, type TestDaemon } from '../testing/daemon.js';

let t: TestDaemon;
const shoal = (...args: string[]) => t.shoal(...args);
const docker = (...args: string[]) => t.docker(...args);

/** Re-runs `probe` (a CLI call) until it answers, at most ~10 s. */
async function waitForOutput(probe: () => Promise<string | undefined>): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out waiting for the CLI to show the allocation');
}

beforeAll(async () => {
  t = await startTestDaemon('network-cli', 'nethost');
}, 30_000);

afterAll(async () => {
  await t?.stop();
});

describe('network commands', () => {
  it('swarm init refuses a bad pool and creates nothing; with 10.20.0.0/16 in /24s, ingress is 10.20.0.0/24', async () => {
    const bad = await shoal('swarm', 'init', '--listen-addr', '127.0.0.1:0', '--default-addr-pool', '10.20.0.0/16', '--default-addr-pool-mask-length', '30');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/invalid default address pool mask length 30/);
    const init = await shoal('swarm', 'init', '--listen-addr', '127.0.0.1:0', '--default-addr-pool', '10.20.0.0/16', '--default-addr-pool-mask-length', '24');
    expect(init.code, init.err).toBe(0);
    const ing = await shoal('network', 'inspect', 'ingress', '--format', '{{json .IPAM.Config}} {{.Ingress}} {{.Scope}} {{.Driver}}');
    expect(ing.out).toBe('[{"Subnet":"10.20.0.0/24","Gateway":"10.20.0.1"}] true swarm overlay\n');
    const swarm = await docker('info', '--format', '{{json .Swarm.Cluster.DefaultAddrPool}} {{.Swarm.Cluster.SubnetSize}}');
    expect(swarm.out).toBe('["10.20.0.0/16"] 24\n');
  });

  it('shoal network create / ls / inspect', async () => {
    const made = await shoal('network', 'create', '-d', 'overlay', '--attachable', 'front');
    expect(made.code, made.err).toBe(0);
    const id = made.out.trim();
    expect(id).toMatch(/^[a-z0-9]{25}$/);
    const given = await shoal('network', 'create', '--subnet', '10.99.0.0/24', '--gateway', '10.99.0.254', '--internal', 'back');
    expect(given.code, given.err).toBe(0);

    const ls = await shoal('network', 'ls');
    const lines = ls.out.trim().split('\n');
    expect(lines[0]).toMatch(/^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(1).join(' '))).toEqual(['back overlay swarm', 'front overlay swarm', 'ingress overlay swarm']);
    expect(lines.some((l) => l.startsWith(`${id.slice(0, 12)} `))).toBe(true);

    const front = JSON.parse((await shoal('network', 'inspect', 'front')).out) as Record<string, unknown>[];
    expect(front[0]).toMatchObject({
      Name: 'front',
      Id: id,
      Scope: 'swarm',
      Driver: 'overlay',
      Attachable: true,
      Internal: false,
      Ingress: false,
      IPAM: { Driver: 'default', Config: [{ Subnet: '10.20.1.0/24', Gateway: '10.20.1.1' }] },
      Options: { 'com.docker.network.driver.overlay.vxlanid_list': '4097' },
    });
    const back = await shoal('network', 'inspect', 'back', '--format', '{{json .IPAM.Config}} {{.Internal}}');
    expect(back.out).toBe('[{"Subnet":"10.99.0.0/24","Gateway":"10.99.0.254"}] true\n');
  });

  it('refusals: --opt encrypted (why, nothing created), an overlapping --subnet, a gateway outside the subnet', async () => {
    const enc = await shoal('network', 'create', '--opt', 'encrypted', 'secret');
    expect(enc.code).toBe(1);
    expect(enc.err).toMatch(/network secret: --opt encrypted is not supported: encrypted overlays need IPsec ESP \(the kernel of this host has CONFIG_INET_ESP unset/);
    const overlap = await shoal('network', 'create', '--subnet', '10.20.0.0/23', 'clash');
    expect(overlap.err).toMatch(/Pool overlaps with other one on this address space \(network clash's subnet 10\.20\.0\.0\/23 overlaps 10\.20\.0\.0\/24 of network ingress\)/);
    const gw = await shoal('network', 'create', '--subnet', '10.98.0.0/24', '--gateway', '10.97.0.1', 'gw');
    expect(gw.err).toMatch(/Gateway "10\.97\.0\.1" is not an address of 10\.98\.0\.0\/24/);
    const names = (await shoal('network', 'ls', '--format', '{{.Name}}')).out.trim().split('\n').sort();
    expect(names).toEqual(['back', 'front', 'ingress']);
  });

  it('the docker CLI: network ls / create / inspect / rm against shoald', async () => {
    const created = await docker('network', 'create', '-d', 'overlay', '--subnet', '10.77.0.0/24', '--ip-range', '10.77.0.128/25', 'dnet');
    expect(created.code, created.err).toBe(0);
    const ls = await docker('network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}');
    expect(ls.code, ls.err).toBe(0);
    expect(ls.out.trim().split('\n').sort()).toEqual(['back overlay swarm', 'dnet overlay swarm', 'front overlay swarm', 'ingress overlay swarm']);
    const filtered = await docker('network', 'ls', '--filter', 'name=dn', '--format', '{{.Name}}');
    expect(filtered.out).toBe('dnet\n');
    const insp = await docker('network', 'inspect', 'dnet', '--format', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}} {{index .Options "com.docker.network.driver.overlay.vxlanid_list"}}');
    expect(insp.out).toBe('10.77.0.0/24 10.77.0.1 10.77.0.128/25 4099\n');
    const enc = await docker('network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'denc');
    expect(enc.code).not.toBe(0);
    expect(enc.err).toMatch(/--opt encrypted is not supported/);
    const removed = await docker('network', 'rm', 'dnet');
    expect(removed.code, removed.err).toBe(0);
    expect(removed.out).toBe('dnet\n');
  });

  it('docker service create -p: the service gets its ports (8080 and a dynamic one) and VIPs on ingress and its network; a taken port is refused naming the holder', async () => {
    const made = await docker('service', 'create', '-d', '--name', 'pub', '--replicas', '0', '--network', 'front', '-p', '8080:80', '-p', '81', 'busybox:1');
    expect(made.code, made.err).toBe(0);
    const ep = await waitForOutput(async () => {
      const r = await docker('service', 'inspect', 'pub', '--format', '{{range .Endpoint.Ports}}{{.PublishedPort}}->{{.TargetPort}}/{{.Protocol}}/{{.PublishMode}} {{end}}{{len .Endpoint.VirtualIPs}}');
      return r.out.endsWith('2\n') ? r.out : undefined;
    });
    expect(ep).toBe('8080->80/tcp/ingress 30000->81/tcp/ingress 2\n');
    const vips = (await docker('service', 'inspect', 'pub', '--format', '{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}')).out.trim().split(' ');
    expect(vips[0]).toMatch(/^10\.20\.0\.\d+\/24$/); // ingress
    expect(vips[1]).toMatch(/^10\.20\.1\.\d+\/24$/); // front
    const ls = await docker('service', 'ls', '--format', '{{.Name}} {{.Ports}}');
    expect(ls.out).toBe('pub *:8080->80/tcp, *:30000->81/tcp\n');
    const thief = await docker('service', 'create', '-d', '--name', 'thief', '--replicas', '0', '-p', '8080:80', 'busybox:1');
    expect(thief.code).not.toBe(0);
    expect(thief.err).toMatch(/port '8080' is already in use by service 'pub' \([a-z0-9]{25}\) as an ingress port/);
    expect((await docker('service', 'rm', 'pub')).code).toBe(0);
  });

  it('rm is refused while a service uses the network, and works once it is gone', async () => {
    const svc = await docker('service', 'create', '-d', '--name', 'user', '--replicas', '0', '--network', 'front', 'busybox:1');
    expect(svc.code, svc.err).toBe(0);
    const refused = await shoal('network', 'rm', 'front');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/network front is in use by service user/);
    const dockerRefused = await docker('network', 'rm', 'front');
    expect(dockerRefused.err).toMatch(/network front is in use by service user/);
    expect((await docker('service', 'rm', 'user')).code).toBe(0);
    const ok = await shoal('network', 'rm', 'front', 'back');
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toBe('front\nback\n');
    const ingress = await shoal('network', 'rm', 'ingress');
    expect(ingress.code).toBe(1);
    expect(ingress.err).toMatch(/routing-mesh \(ingress\) network: .* --force/);
    expect((await shoal('network', 'ls', '-q')).out.trim().split('\n')).toHaveLength(1);
  });
});
