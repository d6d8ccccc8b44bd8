import { describe, expect, it } from 'vitest';
import { DEFAULT_DATA_ROOT, DEFAULT_LISTEN_ADDR, DEFAULT_SOCKET, DaemonUsageError, parseDaemonArgs, withDefaultPort } from './options.js';

describe('shoald arguments', () => {
  it('has dockerd-like defaults', async () => {
    const o = await parseDaemonArgs([]);
    expect(o).toMatchObject({ dataRoot: DEFAULT_DATA_ROOT, socket: DEFAULT_SOCKET, listenAddr: DEFAULT_LISTEN_ADDR, advertiseAddr: '', registryMirrors: [], insecureRegistries: [], logLevel: 'info' });
    expect(DEFAULT_DATA_ROOT).toBe('/var/lib/shoal');
    expect(DEFAULT_SOCKET).toBe('/run/shoal/shoal.sock');
    expect(DEFAULT_LISTEN_ADDR).toBe('0.0.0.0:2377');
  });

  it('takes every flag, repeatable registries included', async () => {
    const o = await parseDaemonArgs([
      '--data-root', '/d', '--socket', '/s.sock', '--listen-addr', '10.0.0.1', '--advertise-addr', '10.0.0.1',
      '--registry-mirror', 'http://10.0.0.9:5000/', '--insecure-registry', 'a:5000', '--insecure-registry', 'b:5000',
      '--log-level', 'debug', '--hostname', 'lab-m1',
    ]);
    expect(o).toEqual({
      dataRoot: '/d',
      socket: '/s.sock',
      listenAddr: '10.0.0.1:2377',
      advertiseAddr: '10.0.0.1',
      registryMirrors: ['http://10.0.0.9:5000'],
      insecureRegistries: ['a:5000', 'b:5000'],
      logLevel: 'debug',
      hostname: 'lab-m1',
    });
  });

  it('refuses what it cannot use, with the flag in the message', async () => {
    await expect(parseDaemonArgs(['--bogus'])).rejects.toThrow(DaemonUsageError);
    await expect(parseDaemonArgs(['--log-level', 'loud'])).rejects.toThrow(/log-level/);
    await expect(parseDaemonArgs(['--registry-mirror', 'ftp://x'])).rejects.toThrow(/--registry-mirror ftp:\/\/x/);
    await expect(parseDaemonArgs(['--data-root', 'relative'])).rejects.toThrow(/--data-root must be an absolute path/);
    await expect(parseDaemonArgs(['--socket', `/${'x'.repeat(120)}`])).rejects.toThrow(/too long/);
    await expect(parseDaemonArgs(['--bogus'])).rejects.toThrow(/--bogus/);
    await expect(parseDaemonArgs(['--socket'])).rejects.toThrow(/--socket/);
    await expect(parseDaemonArgs(['start'])).rejects.toThrow(DaemonUsageError);
  });

  it('takes --flag=value as well as --flag value', async () => {
    const o = await parseDaemonArgs(['--data-root=/d2', '--log-level=warn', '--insecure-registry=r:5000']);
    expect(o).toMatchObject({ dataRoot: '/d2', logLevel: 'warn', insecureRegistries: ['r:5000'] });
  });

  it('--help prints usage and asks not to start', async () => {
    let printed = '';
    const o = await parseDaemonArgs(['--help'], (t) => {
      printed += t;
    });
    expect(o).toBeUndefined();
    expect(printed).toContain('--data-root');
    expect(printed).toContain('--registry-mirror');
    expect(printed).toContain('--log-level');
    expect(printed).toMatch(/^Usage: shoald \[OPTIONS\]/);
  });

  it('adds the swarm port to a bare listen address', () => {
    expect(withDefaultPort('0.0.0.0')).toBe('0.0.0.0:2377');
    expect(withDefaultPort('10.1.2.3:4000')).toBe('10.1.2.3:4000');
    expect(withDefaultPort('fe80::1')).toBe('[fe80::1]:2377');
    expect(withDefaultPort('[fe80::1]:2377')).toBe('[fe80::1]:2377');
  });
});
