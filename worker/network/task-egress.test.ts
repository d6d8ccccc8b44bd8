// Which tasks get a route out (the gateway bridge) and the resolv.conf of a task without an
// embedded resolver: pure functions, no kernel.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import type { Network, Task } from '../../manager/store/types.js';
import { readHostResolvConfText, taskResolvConf } from './resolv-conf.js';
import { needsGateway, VNI_OPTION } from './worker-networks.js';

function network(name: string, extra: Partial<Network['Spec']> = {}): Network {
  return {
    ID: `id${name}`,
    Version: { Index: 1 },
    CreatedAt: '',
    UpdatedAt: '',
    Spec: { Name: name, DriverConfiguration: { Name: 'overlay' }, ...extra },
    DriverState: { Name: 'overlay', Options: { [VNI_OPTION]: '4400' } },
    IPAMOptions: { Driver: { Name: 'default' }, Configs: [{ Subnet: '10.78.0.0/24', Gateway: '10.78.0.1' }] },
  };
}

function task(networks: readonly Network[], hostPort = false): Task {
  return {
    ID: 't1',
    Version: { Index: 1 },
    CreatedAt: '',
    UpdatedAt: '',
    Spec: { ContainerSpec: { Image: 'busybox' } },
    ServiceID: 's1',
    Slot: 1,
    NodeID: '',
    Status: { Timestamp: '', State: 'assigned', Message: '' },
    DesiredState: 'running',
    NetworksAttachments: networks.map((n) => ({ Network: n, Addresses: ['10.78.0.5/24'] })),
    ...(hostPort ? { Endpoint: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }] } } : {}),
  };
}

describe('the gateway bridge endpoint (libnetwork: unless every network is internal)', () => {
  it('a task on no network, on an overlay, on ingress only, or on an internal network plus another gets one', () => {
    expect(needsGateway(task([]))).toBe(true);
    expect(needsGateway(task([network('backend')]))).toBe(true);
    expect(needsGateway(task([network('ingress', { Ingress: true })]))).toBe(true);
    expect(needsGateway(task([network('private', { Internal: true }), network('backend')]))).toBe(true);
  });

  it('a task only on internal networks gets none, unless it publishes a host-mode port', () => {
    expect(needsGateway(task([network('private', { Internal: true })]))).toBe(false);
    expect(needsGateway(task([network('private', { Internal: true })], true))).toBe(true);
  });
});

describe("the resolv.conf of a task without an embedded resolver (Docker's default-bridge rules)", () => {
  it("keeps the host's nameservers that are not loopback nor IPv6, its search domains and options", () => {
    const host = '# generated\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver fe80::1\nnameserver 192.168.1.1 # router\nsearch a.test b.test\noptions ndots:2 edns0\n';
    expect(taskResolvConf(host)).toBe('nameserver 10.1.2.3\nnameserver 192.168.1.1\nsearch a.test b.test\noptions ndots:2 edns0\n');
  });

  it("falls back to Docker's defaults when the host names only loopback resolvers", () => {
    expect(taskResolvConf('nameserver 127.0.0.1\n')).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    expect(taskResolvConf('')).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  });

  it('--dns, --dns-search and --dns-option replace the host’s each', () => {
    const host = 'nameserver 10.1.2.3\nsearch a.test\noptions edns0\n';
    expect(taskResolvConf(host, { Nameservers: ['1.1.1.1'] })).toBe('nameserver 1.1.1.1\nsearch a.test\noptions edns0\n');
    expect(taskResolvConf(host, { Search: ['c.test'], Options: ['ndots:1'] })).toBe('nameserver 10.1.2.3\nsearch c.test\noptions ndots:1\n');
  });

  it('reads the given file; an unreadable one is empty', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-resolv-'));
    try {
      await writeFile(join(dir, 'resolv.conf'), 'nameserver 10.4.4.4\n');
      expect(await readHostResolvConfText(join(dir, 'resolv.conf'))).toBe('nameserver 10.4.4.4\n');
      expect(await readHostResolvConfText(join(dir, 'missing'))).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
