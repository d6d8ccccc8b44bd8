import { describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import {
  bridgeName,
  checkLabName,
  cidrsOverlap,
  forwardChain,
  hostAddress,
  isLabHostName,
  planHosts,
  preferredSubnetIndex,
  resolveHostName,
  subnetOf,
  vethName,
} from './naming.js';
import { overlapsAny } from './net.js';

describe('lab naming', () => {
  it('plans NAME-m1.. and NAME-w1.. with managers at .11.. and workers at .101..', () => {
    const hosts = planHosts('lab', 3, 2);
    expect(hosts.map((h) => h.name)).toEqual(['lab-m1', 'lab-m2', 'lab-m3', 'lab-w1', 'lab-w2']);
    expect(hosts.map((h) => hostAddress(7, h))).toEqual(['10.231.7.11', '10.231.7.12', '10.231.7.13', '10.231.7.101', '10.231.7.102']);
  });

  it('refuses host counts it cannot build', () => {
    expect(() => planHosts('lab', 0, 0)).toThrow(CliError);
    expect(() => planHosts('lab', 21, 0)).toThrow(/--managers/);
    expect(() => planHosts('lab', 1, -1)).toThrow(/--workers/);
  });

  it('accepts lab names that fit in paths and interface names', () => {
    for (const ok of ['lab', 'e2e-12345', 'a', 'x'.repeat(24)]) expect(() => checkLabName(ok)).not.toThrow();
    for (const bad of ['', 'Lab', '-x', 'a_b', 'x'.repeat(25), 'a/b']) expect(() => checkLabName(bad)).toThrow(CliError);
  });

  it('derives interface and chain names that Linux accepts and that differ per lab', () => {
    for (const name of ['lab', 'e2e-99999', 'x'.repeat(24)]) {
      expect(bridgeName(name).length).toBeLessThanOrEqual(15);
      expect(vethName(name, 'm20').length).toBeLessThanOrEqual(15);
      expect(forwardChain(name).length).toBeLessThanOrEqual(28);
    }
    expect(bridgeName('lab')).not.toBe(bridgeName('lab2'));
    expect(vethName('lab', 'm1')).not.toBe(vethName('lab', 'w1'));
  });

  it('recognises its own host namespaces and no one else\'s', () => {
    expect(isLabHostName('lab', 'lab-m1')).toBe(true);
    expect(isLabHostName('lab', 'lab-w12')).toBe(true);
    expect(isLabHostName('lab', 'lab-x1')).toBe(false);
    expect(isLabHostName('lab', 'lab2-m1')).toBe(false);
    expect(isLabHostName('lab', 'lab-m1-extra')).toBe(false);
  });

  it('resolves m1 or NAME-m1, and names the hosts when it cannot', () => {
    const hosts = planHosts('lab', 1, 1);
    expect(resolveHostName('lab', hosts, 'm1').name).toBe('lab-m1');
    expect(resolveHostName('lab', hosts, 'lab-w1').name).toBe('lab-w1');
    expect(() => resolveHostName('lab', hosts, 'lab-m9')).toThrow('no host "lab-m9" in lab "lab" (hosts: lab-m1, lab-w1)');
  });

  it('subnets sit in 10.231.0.0/16 and collisions are detected', () => {
    const idx = preferredSubnetIndex('lab');
    expect(idx).toBeGreaterThanOrEqual(0);
    expect(idx).toBeLessThan(256);
    expect(subnetOf(5)).toBe('10.231.5.0/24');
    expect(cidrsOverlap('10.231.5.0/24', '10.231.5.17')).toBe(true);
    expect(cidrsOverlap('10.231.5.0/24', '10.231.0.0/16')).toBe(true);
    expect(cidrsOverlap('10.231.5.0/24', '10.231.6.0/24')).toBe(false);
    expect(overlapsAny('10.231.5.0/24', ['192.0.2.0/24', '10.231.5.1/24'])).toBe(true);
    expect(overlapsAny('10.231.5.0/24', ['192.0.2.0/24', 'garbage'])).toBe(false);
  });
});
