// The OCI runtime config (config.json) of one task's bundle, with Docker's defaults: its capability
// set, no-new-privileges, masked and read-only /proc and /sys paths, the standard mounts, a device
// cgroup that denies everything but runc's default devices, and cgroup limits from the spec.
// A pure function: everything host-specific comes in through BundleInput.
import type { ResolvedUser } from './user.js';

/** Docker's default capabilities (moby's oci/caps defaults). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Paths Docker hides (a /dev/null bind for files, an empty read-only tmpfs for directories). */
export const MASKED_PATHS: readonly string[] = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Paths Docker remounts read-only. */
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** CFS period Docker uses (µs). */
export const CPU_PERIOD_US = 100_000;
/** The /dev and /dev/shm tmpfs size Docker uses. */
const DEV_TMPFS_SIZE = '65536k';

export interface OciMount {
  readonly destination: string;
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

export interface BundleInput {
  readonly hostname: string;
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly user: ResolvedUser;
  /** Absolute, or relative to the bundle. */
  readonly rootfs: string;
  readonly readonlyRootfs: boolean;
  /** Mounts after the standard ones, in order (bind, volume, tmpfs, secrets, configs, /etc files). */
  readonly mounts: readonly OciMount[];
  /** `/run/netns/NAME`; undefined: runc makes a new namespace (with `lo` up). */
  readonly networkNamespacePath: string | undefined;
  /** runc's linux.cgroupsPath (cgroupfs driver: an absolute path under each hierarchy). */
  readonly cgroupsPath: string;
  readonly limits: { readonly nanoCpus?: number; readonly memoryBytes?: number; readonly pids?: number };
  readonly sysctls?: Readonly<Record<string, string>>;
  /** OOM score of the container's processes (Docker leaves it 0). */
  readonly oomScoreAdj?: number;
}

/** CFS quota (µs per period) for NanoCPUs: NanoCPUs / 1e9 × period, at least 1 ms as the kernel requires. */
export function cpuQuota(nanoCpus: number, periodUs: number = CPU_PERIOD_US): number {
  return Math.max(1000, Math.round((nanoCpus / 1e9) * periodUs));
}

function standardMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', `size=${DEV_TMPFS_SIZE}`] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${DEV_TMPFS_SIZE}`] },
  ];
}

/** The config.json document. */
export function buildOciConfig(input: BundleInput): Record<string, unknown> {
  const root = input.user.uid === 0;
  // Like Docker: a non-root user gets the bounding set but no effective or permitted capabilities,
  // so a setuid-less program cannot use them.
  const capabilities = {
    bounding: [...DEFAULT_CAPABILITIES],
    effective: root ? [...DEFAULT_CAPABILITIES] : [],
    permitted: root ? [...DEFAULT_CAPABILITIES] : [],
  };
  const resources: Record<string, unknown> = {
    devices: [{ allow: false, access: 'rwm' }],
  };
  const { nanoCpus, memoryBytes, pids } = input.limits;
  if (memoryBytes !== undefined && memoryBytes > 0) resources.memory = { limit: memoryBytes };
  if (nanoCpus !== undefined && nanoCpus > 0) resources.cpu = { quota: cpuQuota(nanoCpus), period: CPU_PERIOD_US };
  if (pids !== undefined && pids > 0) resources.pids = { limit: pids };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.user.uid, gid: input.user.gid, ...(input.user.additionalGids.length > 0 ? { additionalGids: [...input.user.additionalGids] } : {}) },
      args: [...input.args],
      env: [...input.env],
      cwd: input.cwd,
      capabilities,
      noNewPrivileges: true,
      ...(input.oomScoreAdj !== undefined ? { oomScoreAdj: input.oomScoreAdj } : {}),
    },
    root: { path: input.rootfs, readonly: input.readonlyRootfs },
    hostname: input.hostname,
    mounts: [...standardMounts(), ...input.mounts].map((m) => ({ ...m, options: [...m.options] })),
    linux: {
      resources,
      cgroupsPath: input.cgroupsPath,
      namespaces: [{ type: 'pid' }, input.networkNamespacePath !== undefined ? { type: 'network', path: input.networkNamespacePath } : { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
      ...(input.sysctls !== undefined && Object.keys(input.sysctls).length > 0 ? { sysctl: { ...input.sysctls } } : {}),
    },
  };
}
