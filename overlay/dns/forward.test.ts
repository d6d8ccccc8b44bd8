// Forwarding names outside the cluster: to the host's resolvers, or to the asking task's own
// (`--dns`), as Docker's embedded resolver does. Real UDP resolvers on loopback stand in for them.

import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildQuery, buildResponse, parseQuery, parseResponse } from './message.js';
import { ContainerDns } from './server.js';
import { containerResolvConf, nameserverUpstreams, type Upstream } from './upstream.js';

const sockets: dgram.Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A resolver on 127.0.0.1 that answers every A query with `address`. */
async function resolver(address: string): Promise<Upstream> {
  const sock = dgram.createSocket('udp4');
  sockets.push(sock);
  sock.on('message', (msg, rinfo) => {
    sock.send(buildResponse(msg, parseQuery(msg), { rcode: 0, addresses: [address] }), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return { address: '127.0.0.1', port: (sock.address() as AddressInfo).port };
}

describe('forwarding names that are not the cluster\'s', () => {
  it('goes to the asking task\'s own resolvers when it has some, to the host\'s otherwise', async () => {
    const host = await resolver('192.0.2.1');
    const own = await resolver('192.0.2.2');
    const dns = new ContainerDns({
      upstreams: [host],
      view: () => [],
      upstreamsFor: (networkId, sourceIp) => (networkId === 'n1' && sourceIp === '10.0.1.5' ? [own] : undefined),
      upstreamTimeoutMs: 2_000,
    });
    const ask = async (sourceIp: string): Promise<readonly string[]> => {
      const reply = await dns.answer('n1', sourceIp, buildQuery(9, 'example.com'));
      return parseResponse(reply!).addresses;
    };
    expect(await ask('10.0.1.5')).toEqual(['192.0.2.2']);
    expect(await ask('10.0.1.6')).toEqual(['192.0.2.1']);
  });

  it('keeps only the IPv4 servers of a task\'s --dns list', () => {
    expect(nameserverUpstreams(['10.9.9.9', '2001:db8::1', 'resolver.example'])).toEqual([{ address: '10.9.9.9', port: 53 }]);
  });
});

describe('a task\'s resolv.conf behind the embedded resolver', () => {
  it('adds ndots:0 to the task\'s options unless they set ndots', () => {
    expect(containerResolvConf('10.0.1.1', ['corp.example'], ['timeout:2'])).toBe('nameserver 10.0.1.1\nsearch corp.example\noptions ndots:0 timeout:2\n');
    expect(containerResolvConf('10.0.1.1', [], ['ndots:3'])).toBe('nameserver 10.0.1.1\noptions ndots:3\n');
  });
});
