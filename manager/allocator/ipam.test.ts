// The allocator's building blocks on their own: subnets carved from the default pool without
// overlap, addresses handed out serially and reused after release, VNIs from 4096, ingress ports
// (explicit ones refused when taken, naming the holder; dynamic ones from 30000–32767), and the
// errors a user sees when a pool runs out.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { AllocatorError } from './errors.js';
import { addrOfInterface, formatAddr, formatCidr, overlaps, parseAddr, parseCidr, type Cidr } from './ipv4.js';
import { NetworkAddresses } from './network-addresses.js';
import { IngressPorts } from './ports.js';
import { nextFreeSubnet, parsePoolConfig } from './subnet-pool.js';
import { VniSet, vniOf } from './vni.js';
import { initialAllocation } from './init.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof AllocatorError) return `${err.code}: ${err.message}`;
    throw err;
  }
  return 'no error';
}

describe('default address pool', () => {
  it('carves 10.0.0.0/8 into /24s lowest first, skipping subnets any network holds', () => {
    const cfg = parsePoolConfig(undefined, undefined);
    const taken: Cidr[] = [];
    const got: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = nextFreeSubnet(cfg, taken);
      taken.push(s);
      got.push(formatCidr(s));
    }
    expect(got).toEqual(['10.0.0.0/24', '10.0.1.0/24', '10.0.2.0/24']);
    // A user's --subnet 10.0.3.0/23 covers .3 and .4 (host bits aside): the next one is .5.
    taken.push(parseCidr('10.0.4.0/23', 'x'));
    expect(formatCidr(nextFreeSubnet(cfg, taken))).toBe('10.0.3.0/24');
    taken.push(parseCidr('10.0.3.0/24', 'x'));
    expect(formatCidr(nextFreeSubnet(cfg, taken))).toBe('10.0.6.0/24');
  });

  it('never hands out overlapping subnets, whatever the user took (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 20, max: 28 })), { maxLength: 12 }), (userNets) => {
        const cfg = parsePoolConfig(['10.20.0.0/16'], 26);
        const taken: Cidr[] = userNets.map(([third, bits]) => {
          const base = parseCidr(`10.20.${third}.0/24`, 'x').base;
          const size = 2 ** (32 - bits);
          return { base: base - (base % size), prefixLength: bits };
        });
        const given: Cidr[] = [];
        for (let i = 0; i < 20; i++) {
          let s: Cidr;
          try {
            s = nextFreeSubnet(cfg, [...taken, ...given]);
          } catch (err) {
            expect((err as AllocatorError).code).toBe('ERR_ALLOC_POOL_EXHAUSTED');
            break;
          }
          const clash = [...taken, ...given].find((t) => overlaps(s, t));
          if (s.prefixLength !== 26 || clash !== undefined) throw new Error(`${formatCidr(s)} overlaps ${clash === undefined ? '-' : formatCidr(clash)}`);
          given.push(s);
        }
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('a custom pool (--default-addr-pool 10.10.0.0/16, mask 28) is used, and runs out with a message', () => {
    const cfg = parsePoolConfig(['10.10.0.0/26'], 28);
    const taken: Cidr[] = [];
    for (let i = 0; i < 4; i++) taken.push(nextFreeSubnet(cfg, taken));
    expect(taken.map(formatCidr)).toEqual(['10.10.0.0/28', '10.10.0.16/28', '10.10.0.32/28', '10.10.0.48/28']);
    expect(code(() => nextFreeSubnet(cfg, taken))).toMatch(/^ERR_ALLOC_POOL_EXHAUSTED: could not find an available, non-overlapping IPv4 address pool .* all 4 \/28 subnets of 10\.10\.0\.0\/26 are in use/);
  });

  it('refuses bad pools at swarm init', () => {
    expect(code(() => parsePoolConfig(['10.0.0.0/8'], 30))).toMatch(/mask length 30: it must be from 1 to 29/);
    expect(code(() => parsePoolConfig(['10.0.0.0/24'], 16))).toMatch(/10\.0\.0\.0\/24: it is smaller than the subnets carved from it/);
    expect(code(() => parsePoolConfig(['10.0.0.1/8'], 24))).toMatch(/host bits set: did you mean 10\.0\.0\.0\/8/);
    expect(code(() => parsePoolConfig(['10.0.0.0/8', '10.1.0.0/16'], 24))).toMatch(/10\.1\.0\.0\/16 overlaps 10\.0\.0\.0\/8/);
    expect(code(() => parsePoolConfig(['banana'], 24))).toMatch(/ERR_ALLOC_INVALID_POOL: invalid default address pool: .*"banana" is not an IPv4 subnet/);
  });

  it('swarm init: ingress gets the pool\'s first subnet and VNI 4096', () => {
    const d = initialAllocation(undefined, undefined);
    expect(d.cluster).toEqual({ DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24 });
    expect(d.ingress.IPAMOptions?.Configs).toEqual([{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }]);
    expect(vniOf(d.ingress.DriverState?.Options)).toBe(4096);
    expect(d.ingress.Spec).toMatchObject({ Name: 'ingress', Ingress: true });
    const custom = initialAllocation(['10.30.0.0/16'], 20);
    expect(custom.ingress.IPAMOptions?.Configs).toEqual([{ Subnet: '10.30.0.0/20', Gateway: '10.30.0.1' }]);
  });
});

describe('IPv4 text', () => {
  it('parses dotted quads and nothing else', () => {
    expect(parseAddr('10.0.1.5')).toBe(10 * 2 ** 24 + 1 * 256 + 5);
    expect(formatAddr(parseAddr('255.255.255.255')!)).toBe('255.255.255.255');
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1..2.3', '1.2.3.', '.1.2.3', 'a.b.c.d', '1.2.3.4 ', '1234.1.1.1']) expect(parseAddr(bad), bad).toBeNull();
    expect(addrOfInterface('10.0.1.5/24')).toBe(parseAddr('10.0.1.5'));
    expect(addrOfInterface('10.0.1.5')).toBe(parseAddr('10.0.1.5'));
  });
});

describe('addresses of one network', () => {
  it('skips network, gateway and broadcast; serial; a released address comes back only after the others', () => {
    const subnet = parseCidr('10.0.1.0/29', 'x');
    const a = new NetworkAddresses('net1', subnet, subnet.base + 1);
    const got = [a.allocate(), a.allocate(), a.allocate()].map(formatAddr);
    expect(got).toEqual(['10.0.1.2', '10.0.1.3', '10.0.1.4']);
    a.release(subnet.base + 3);
    expect(formatAddr(a.allocate())).toBe('10.0.1.5');
    expect(formatAddr(a.allocate())).toBe('10.0.1.6');
    expect(formatAddr(a.allocate())).toBe('10.0.1.3'); // wrapped round to the released one
    expect(a.free).toBe(0);
    expect(code(() => a.allocate())).toBe('ERR_ALLOC_SUBNET_FULL: no free address left on network net1 (10.0.1.0/29, gateway 10.0.1.1): remove tasks or services from it, or use a network with a larger subnet');
    expect(a.withPrefix(subnet.base + 2)).toBe('10.0.1.2/29');
  });

  it('hands every address of a /22 out exactly once (no overlap), then reuses released ones', () => {
    const subnet = parseCidr('10.4.0.0/22', 'x');
    const a = new NetworkAddresses('big', subnet, subnet.base + 1);
    const seen = new Set<number>();
    for (let i = 0; i < 1021; i++) seen.add(a.allocate());
    expect(seen.size).toBe(1021);
    expect(a.free).toBe(0);
    for (const x of [...seen].slice(100, 110)) a.release(x);
    const again = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(() => a.allocate()));
    expect([...again].every((x) => seen.has(x))).toBe(true);
    expect(again.size).toBe(10);
  });

  it('rebuilding: reserve() refuses an address held twice and one outside the subnet', () => {
    const subnet = parseCidr('10.0.9.0/24', 'x');
    const a = new NetworkAddresses('n', subnet, subnet.base + 1);
    expect(a.reserve(subnet.base + 7)).toBe(true);
    expect(a.reserve(subnet.base + 7)).toBe(false);
    expect(a.reserve(subnet.base + 300)).toBe(false);
    expect(formatAddr(a.allocate())).toBe('10.0.9.2');
  });
});

describe('VNIs', () => {
  it('from 4096 up, lowest free first', () => {
    const v = new VniSet();
    expect([v.allocate(), v.allocate(), v.allocate()]).toEqual([4096, 4097, 4098]);
    v.release(4097);
    expect(v.allocate()).toBe(4097);
    expect(v.reserve(100)).toBe(false);
    expect(v.reserve(4098)).toBe(false);
    expect(vniOf({ 'com.docker.network.driver.overlay.vxlanid_list': '4200' })).toBe(4200);
    expect(vniOf({})).toBeNull();
  });
});

describe('ingress ports', () => {
  it('an explicit port held by another service is refused with its name; dynamic ports come from 30000 up', () => {
    const p = new IngressPorts();
    const web = { serviceId: 'id-web', serviceName: 'web' };
    const api = { serviceId: 'id-api', serviceName: 'api' };
    p.reserve('tcp', 8080, web);
    p.reserve('tcp', 8080, web); // the holder again: fine
    p.reserve('udp', 8080, api); // another protocol: free
    expect(code(() => p.reserve('tcp', 8080, api))).toBe("ERR_ALLOC_PORT_IN_USE: port '8080' is already in use by service 'web' (id-web) as an ingress port");
    expect(p.allocateDynamic('tcp', api)).toBe(30000);
    expect(p.allocateDynamic('tcp', api)).toBe(30001);
    expect(p.allocateDynamic('udp', api)).toBe(30000);
    p.releaseService('id-api');
    expect(p.allocateDynamic('tcp', web)).toBe(30000);
    expect(p.ownerOf('udp', 8080)).toBeUndefined();
  });

  it('runs out after 2768 dynamic ports with a message', () => {
    const p = new IngressPorts();
    const s = { serviceId: 'x', serviceName: 'many' };
    for (let i = 0; i < 2768; i++) p.allocateDynamic('tcp', s);
    expect(code(() => p.allocateDynamic('tcp', s))).toMatch(/^ERR_ALLOC_PORTS_EXHAUSTED: no free dynamic tcp port left for service many: 30000–32767/);
  });
});
