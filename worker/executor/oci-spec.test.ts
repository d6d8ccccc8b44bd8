// The OCI config the executor writes: Docker's defaults and the spec's limits, checked field by field.
import { describe, expect, it } from 'vitest';
import { buildOciConfig, cpuQuota, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, type BundleInput } from './oci-spec.js';

const base: BundleInput = {
  hostname: 'h',
  args: ['sh'],
  env: ['PATH=/bin'],
  cwd: '/',
  user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
  rootfs: 'rootfs',
  readonlyRootfs: false,
  mounts: [{ destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'rprivate'] }],
  networkNamespacePath: '/run/netns/x',
  cgroupsPath: '/shoal/t1',
  limits: {},
};

type Config = {
  process: { capabilities: Record<string, string[]>; noNewPrivileges: boolean; terminal: boolean; user: Record<string, unknown> };
  root: { path: string; readonly: boolean };
  mounts: { destination: string; type: string; options: string[] }[];
  linux: { resources: Record<string, unknown>; namespaces: { type: string; path?: string }[]; maskedPaths: string[]; readonlyPaths: string[]; cgroupsPath: string };
};

describe('buildOciConfig', () => {
  it('has Docker defaults: capabilities, no-new-privileges, masked and read-only paths, namespaces, standard mounts', () => {
    const c = buildOciConfig(base) as unknown as Config;
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(c.process.capabilities).toEqual({ bounding: DEFAULT_CAPABILITIES, effective: DEFAULT_CAPABILITIES, permitted: DEFAULT_CAPABILITIES });
    expect(c.process.noNewPrivileges).toBe(true);
    expect(c.process.terminal).toBe(false);
    expect(c.linux.maskedPaths).toEqual(MASKED_PATHS);
    expect(c.linux.readonlyPaths).toEqual(READONLY_PATHS);
    expect(c.linux.namespaces).toEqual([{ type: 'pid' }, { type: 'network', path: '/run/netns/x' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }]);
    expect(c.mounts.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm', '/data']);
    expect(c.mounts.find((m) => m.destination === '/sys')?.options).toContain('ro');
    expect(c.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options).toContain('ro');
    expect(c.linux.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }] });
    expect(c.root).toEqual({ path: 'rootfs', readonly: false });
    expect(c.linux.cgroupsPath).toBe('/shoal/t1');
  });

  it('gives a non-root user the bounding set only', () => {
    const c = buildOciConfig({ ...base, user: { uid: 1000, gid: 1000, additionalGids: [50], home: '/' } }) as unknown as Config;
    expect(c.process.capabilities).toEqual({ bounding: DEFAULT_CAPABILITIES, effective: [], permitted: [] });
    expect(c.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [50] });
  });

  it('turns limits into cgroup resources: memory, CFS quota from NanoCPUs, pids; read-only root', () => {
    const c = buildOciConfig({ ...base, readonlyRootfs: true, limits: { nanoCpus: 1.5e9, memoryBytes: 64 << 20, pids: 100 } }) as unknown as Config;
    expect(c.linux.resources).toMatchObject({ memory: { limit: 64 << 20 }, cpu: { quota: 150_000, period: 100_000 }, pids: { limit: 100 } });
    expect(c.root.readonly).toBe(true);
  });

  it('computes quota = NanoCPUs / 1e9 × period, never under the kernel minimum of 1 ms', () => {
    expect(cpuQuota(0.5e9)).toBe(50_000);
    expect(cpuQuota(2e9)).toBe(200_000);
    expect(cpuQuota(1e6)).toBe(1000);
  });
});
