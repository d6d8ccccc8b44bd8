// Pure parts of the data plane: VIP rule rendering, peer diffs, spec checks.

import { describe, expect, it } from 'vitest';
import { macFromIpv4 } from './addresses.js';
import { EncryptedOverlayUnsupportedError, OverlayError } from './errors.js';
import { rejectChain, serviceChain, vipChain } from './names.js';
import { diffMaps, parseFdb, parseNeighbours } from './peers.js';
import { validateNetworkSpec, validateOverlayOptions } from './spec.js';
import { parseRuleState, renderNetworkRemoval, renderNetworkRules, ruleProbability } from './vip-rules.js';

const none = parseRuleState('');

describe('VIP rules', () => {
  it('gives each of k backends 1/k: probabilities 1/k, 1/(k-1), …, then an unconditional rule', () => {
    const text = renderNetworkRules('net1', [{ id: 's', name: 'web', endpointMode: 'vip', vip: '10.0.1.100', backends: ['10.0.1.4', '10.0.1.2', '10.0.1.3'] }], none);
    const chain = serviceChain('net1', 's');
    const dnat = text.split('\n').filter((l) => l.startsWith(`-A ${chain}`));
    expect(dnat).toEqual([
      `-A ${chain} -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 10.0.1.2`,
      `-A ${chain} -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.0.1.3`,
      `-A ${chain} -j DNAT --to-destination 10.0.1.4`,
    ]);
    expect(text).toContain(`-I OUTPUT -j ${vipChain('net1')}`);
    expect(text).toContain(`-I OUTPUT -j ${rejectChain('net1')}`);
    expect(text).toContain(`-A ${rejectChain('net1')} -d 10.0.1.100/32 -p tcp -j REJECT --reject-with tcp-reset`);
    let p = 1;
    for (let i = 0; i < 4; i++) p *= 1 - Number(ruleProbability(i, 5));
    expect(p).toBeCloseTo(0.2, 6); // what falls through to the last of 5
  });

  it('adds no second jump, and flushes then deletes the chain of a service gone', () => {
    const save = [
      '*nat',
      `:${vipChain('net1')} - [0:0]`,
      `:${serviceChain('net1', 'old')} - [0:0]`,
      `:${serviceChain('net2', 'x')} - [0:0]`,
      `-A OUTPUT -j ${vipChain('net1')}`,
      'COMMIT',
      '*filter',
      `:${rejectChain('net1')} - [0:0]`,
      `-A OUTPUT -j ${rejectChain('net1')}`,
      'COMMIT',
    ].join('\n');
    const text = renderNetworkRules('net1', [{ id: 's', name: 'web', endpointMode: 'vip', vip: '10.0.1.100', backends: [] }], parseRuleState(save));
    expect(text).not.toContain('-I OUTPUT');
    expect(text).toContain(`:${serviceChain('net1', 'old')} - [0:0]`);
    expect(text).toContain(`-X ${serviceChain('net1', 'old')}`);
    expect(text).not.toContain(serviceChain('net2', 'x')); // another network's chain is not ours to touch
    expect(text).not.toContain(serviceChain('net1', 's')); // no backends: no DNAT chain, REJECT answers
    const removal = renderNetworkRemoval('net1', parseRuleState(save))!;
    expect(removal).toContain(`-D OUTPUT -j ${vipChain('net1')}`);
    expect(removal).toContain(`-X ${serviceChain('net1', 'old')}`);
    expect(removal).not.toContain('net2');
    expect(renderNetworkRemoval('net3', parseRuleState(save))).toBeUndefined();
  });

  it('keeps chain names within iptables limits', () => {
    expect(serviceChain('x'.repeat(64), 'y'.repeat(64)).length).toBeLessThanOrEqual(28);
  });
});

describe('peers', () => {
  it('diffs to the minimal change', () => {
    const current = new Map([['a', 1], ['b', 2], ['c', 3]]);
    const wanted = new Map([['a', 1], ['b', 9], ['d', 4]]);
    expect(diffMaps(current, wanted)).toEqual({ upsert: [['b', 9], ['d', 4]], remove: [['c', 3]] });
  });

  it('reads the kernel tables, ignoring what is not a static peer entry', () => {
    const fdb = [
      '00:00:00:00:00:00 dst 10.9.9.9 self permanent',
      '02:42:0a:00:01:04 dst 192.168.1.2 self permanent',
      '02:42:0a:00:01:05 master br0',
      '16:a1:b5:07:51:06 vlan 1 master br0 permanent',
    ].join('\n');
    expect(parseFdb(fdb)).toEqual(new Map([['02:42:0a:00:01:04', '192.168.1.2']]));
    const neigh = '10.0.1.4 lladdr 02:42:0a:00:01:04 PERMANENT\n10.0.1.9 lladdr 02:42:0a:00:01:09 REACHABLE\n';
    expect(parseNeighbours(neigh)).toEqual(new Map([['10.0.1.4', '02:42:0a:00:01:04']]));
  });

  it('derives MACs from addresses as Docker does', () => {
    expect(macFromIpv4('10.0.1.4')).toBe('02:42:0a:00:01:04');
  });
});

describe('network spec', () => {
  const spec = { id: 'abc', name: 'front', vni: 4097, subnet: '10.0.1.0/24', gateway: '10.0.1.1' };

  it('refuses --opt encrypted and says why', () => {
    expect(() => validateOverlayOptions('front', { encrypted: '' })).toThrow(EncryptedOverlayUnsupportedError);
    expect(() => validateOverlayOptions('front', { encrypted: 'true' })).toThrow(/CONFIG_INET_ESP/);
    expect(() => validateOverlayOptions('front', { 'com.docker.network.driver.mtu': '1400' })).not.toThrow();
  });

  it('refuses a VNI below 4096 and a gateway outside the subnet', () => {
    expect(() => validateNetworkSpec({ ...spec, vni: 1 })).toThrow(OverlayError);
    expect(() => validateNetworkSpec({ ...spec, gateway: '10.0.2.1' })).toThrow(/not an address of/);
    expect(() => validateNetworkSpec(spec)).not.toThrow();
  });
});
