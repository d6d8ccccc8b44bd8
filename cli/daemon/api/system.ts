// System endpoints: `/_ping` (HEAD and GET), `/version`, `/info`. Shapes follow dockerd's (the docker
// CLI reads them; ../shared/reference/docker-api.md §1.2, §2.1, §2.2 and the 20.10 captures).
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { API_VERSION, MIN_API_VERSION, SHOAL_VERSION, goArch, machineArch } from '../../version.js';
import type { DaemonOptions } from '../options.js';
import { registerDistributionRoutes } from './distribution.js';
import { swarmPingHeader, type SwarmStatusSource } from '../swarm-status.js';
import { reply, type ApiServer } from './server.js';

export interface SystemContext {
  readonly options: DaemonOptions;
  /** Stable per data root (Docker's engine ID). */
  readonly engineId: string;
  readonly swarm: () => SwarmStatusSource;
}

function operatingSystem(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
    if (m?.[1] !== undefined) return m[1];
  } catch {
    // not Linux-like; fall through
  }
  return 'Linux';
}

function cgroupVersion(): string {
  try {
    readFileSync('/sys/fs/cgroup/cgroup.controllers');
    return '2';
  } catch {
    return '1';
  }
}

export function versionBody(): Record<string, unknown> {
  const details = {
    ApiVersion: API_VERSION,
    Arch: goArch(),
    BuildTime: '',
    Experimental: 'false',
    GitCommit: '',
    GoVersion: `node ${process.version}`,
    KernelVersion: release(),
    MinAPIVersion: MIN_API_VERSION,
    Os: 'linux',
  };
  return {
    Platform: { Name: 'Shoal' },
    Components: [
      { Name: 'Engine', Version: SHOAL_VERSION, Details: details },
      { Name: 'Node.js', Version: process.version },
    ],
    Version: SHOAL_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: '',
    GoVersion: `node ${process.version}`,
    Os: 'linux',
    Arch: goArch(),
    KernelVersion: release(),
    BuildTime: '',
  };
}

export async function infoBody(ctx: SystemContext): Promise<Record<string, unknown>> {
  const { options } = ctx;
  const swarm = await ctx.swarm().swarmInfo();
  const insecureCidrs = ['127.0.0.0/8'];
  const indexConfigs: Record<string, unknown> = {
    'docker.io': { Name: 'docker.io', Mirrors: options.registryMirrors, Secure: true, Official: true },
  };
  for (const r of options.insecureRegistries) {
    if (/\/\d+$/.test(r)) insecureCidrs.push(r);
    else indexConfigs[r] = { Name: r, Mirrors: [], Secure: false, Official: false };
  }
  return {
    ID: ctx.engineId,
    Containers: 0,
    ContainersRunning: 0,
    ContainersPaused: 0,
    ContainersStopped: 0,
    Images: 0,
    Driver: 'overlay2',
    DriverStatus: null,
    Plugins: { Volume: null, Network: ['overlay'], Authorization: null, Log: null },
    MemoryLimit: true,
    SwapLimit: false,
    CpuCfsPeriod: true,
    CpuCfsQuota: true,
    CPUShares: true,
    CPUSet: true,
    PidsLimit: true,
    IPv4Forwarding: true,
    Debug: options.logLevel === 'debug' || options.logLevel === 'trace',
    NFd: 0,
    OomKillDisable: false,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: 'json-file',
    CgroupDriver: 'cgroupfs',
    CgroupVersion: cgroupVersion(),
    NEventsListener: 0,
    KernelVersion: release(),
    OperatingSystem: operatingSystem(),
    OSVersion: '',
    OSType: 'linux',
    Architecture: machineArch(),
    IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: {
      InsecureRegistryCIDRs: insecureCidrs,
      IndexConfigs: indexConfigs,
      Mirrors: options.registryMirrors,
    },
    NCPU: cpus().length,
    MemTotal: totalmem(),
    GenericResources: null,
    DockerRootDir: options.dataRoot,
    HttpProxy: '',
    HttpsProxy: '',
    NoProxy: '',
    Name: options.hostname,
    Labels: [],
    ExperimentalBuild: false,
    ServerVersion: SHOAL_VERSION,
    Runtimes: { runc: { path: 'runc' } },
    DefaultRuntime: 'runc',
    Swarm: swarm,
    LiveRestoreEnabled: false,
    Isolation: '',
    InitBinary: '',
    SecurityOptions: [],
    Warnings: null,
  };
}

/** Registers `/_ping`, `/version`, `/info` and `/distribution/{image}/json`. */
export function registerSystemRoutes(api: ApiServer, ctx: SystemContext): void {
  const ping = async (): Promise<Record<string, string>> => ({
    Swarm: swarmPingHeader(await ctx.swarm().swarmInfo()),
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    Pragma: 'no-cache',
  });
  // HEAD answers the headers with an empty body; GET says "OK" (what the docker CLI and dockerode expect).
  api.route('HEAD', '/_ping', async () => reply.text('', 200, 'text/plain; charset=utf-8', await ping()));
  api.route('GET', '/_ping', async () => reply.text('OK', 200, 'text/plain; charset=utf-8', await ping()));
  api.route('GET', '/version', () => reply.json(versionBody()));
  api.route('GET', '/info', async () => reply.json(await infoBody(ctx)));
  registerDistributionRoutes(api, {
    registryMirrors: ctx.options.registryMirrors,
    insecureRegistries: ctx.options.insecureRegistries,
    logger: api.logger.child({ component: 'distribution' }),
  });
}
