// Docker swarm mode under test: Debian's dockerd 20.10, one per host, each host a network namespace
// on a bridge of its own with a registry (Debian's docker-registry, seeded with the same busybox
// image as the Shoal lab's). Each dockerd runs in its namespace (nsenter --net, and its own UTS
// namespace so the nodes have distinct hostnames), so the iptables rules and the FORWARD DROP
// policy it installs stay inside that namespace; the root namespace's FORWARD policy is recorded
// and restored anyway. down() stops every daemon by PID, kills what they left (containerd, shims,
// containers via runc), unmounts, and removes namespaces, links, chains and directories.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createBridge, createHostNetns, deleteLink, deleteNetns, installForwardChain, overlapsAny, removeForwardChain, unmountUnder, usedCidrs } from '../../cli/lab/net.js';
import { seedBusybox, startLabRegistry } from '../../cli/lab/registry.js';
import { runCommand } from '../../cli/lab/sys.js';
import { isProcessAlive, readProcStat } from '../../cli/proc.js';
import type { ProcessRef } from '../../cli/lab/state.js';
import { netnsPids } from './memory.js';
import { ApiPool, sleep, waitUntil, type BenchHost, type SystemUnderTest } from './system.js';
import type { EngineApi } from './api.js';

const START_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 45_000;
const STATE_ROOT = '/var/lib/shoal-vs';
const RUN_ROOT = '/run/vsd';

interface DockerHost extends BenchHost {
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly logFile: string;
  daemon?: ProcessRef;
}

function execText(cmd: string, args: readonly string[]): Promise<string> {
  return runCommand(cmd, args).then((r) => {
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
    return r.stdout;
  });
}

export class DockerSystem implements SystemUnderTest {
  readonly name = 'docker-swarm' as const;
  private readonly apis = new ApiPool();
  private registryProc: ProcessRef | undefined;
  private forwardPolicy: string | undefined;
  private readonly made = { bridge: false, chain: false, netns: [] as string[], veths: [] as string[] };
  image = '';
  readonly hosts: DockerHost[] = [];

  private constructor(
    private readonly labName: string,
    private readonly subnetPrefix: string,
  ) {}

  private get bridge(): string {
    return `vsd-${this.labName}`;
  }
  private get chain(): string {
    return `VSD-${this.labName.toUpperCase()}`;
  }
  private get dir(): string {
    return join(STATE_ROOT, this.labName);
  }

  /** Builds the hosts, starts a dockerd on each, inits the swarm on the first and joins the rest. */
  static async up(labName: string, managers: number, workers: number): Promise<DockerSystem> {
    if (!/^[a-z0-9]{1,8}$/.test(labName)) throw new Error(`docker lab name "${labName}": 1-8 lowercase letters or digits`);
    const used = await usedCidrs();
    let prefix: string | undefined;
    for (let x = 0; x < 250 && prefix === undefined; x++) if (!overlapsAny(`10.232.${x}.0/24`, used)) prefix = `10.232.${x}`;
    if (prefix === undefined) throw new Error('no free /24 under 10.232.0.0/16 for the docker lab');
    const sys = new DockerSystem(labName, prefix);
    try {
      await sys.build(managers, workers);
      return sys;
    } catch (err) {
      await sys.down();
      throw err;
    }
  }

  private async build(managers: number, workers: number): Promise<void> {
    this.forwardPolicy = /^-P FORWARD (\w+)/m.exec(await execText('iptables', ['-S', 'FORWARD']))?.[1];
    const gateway = `${this.subnetPrefix}.1`;
    mkdirSync(this.dir, { recursive: true });
    await createBridge(this.bridge, gateway);
    this.made.bridge = true;
    await installForwardChain(this.chain, this.bridge);
    this.made.chain = true;
    const reg = await startLabRegistry({ dir: join(this.dir, 'registry'), logFile: join(this.dir, 'registry.log') }, gateway, 5000);
    this.registryProc = reg.process;
    await seedBusybox(reg.address);
    this.image = `${reg.address}/busybox:latest`;
    const roles: ('manager' | 'worker')[] = [...Array<'manager'>(managers).fill('manager'), ...Array<'worker'>(workers).fill('worker')];
    for (const [i, role] of roles.entries()) {
      const n = i + 1;
      const host: DockerHost = {
        name: `${this.labName}-d${n}`,
        netns: `vsd-${this.labName}-${n}`,
        socket: join(RUN_ROOT, `${this.labName}-${n}`, 'docker.sock'),
        address: `${this.subnetPrefix}.${10 + n}`,
        role,
        dataRoot: join(this.dir, `h${n}`),
        execRoot: join(RUN_ROOT, `${this.labName}-${n}`),
        logFile: join(this.dir, `h${n}.log`),
      };
      const veth = `vsd${this.labName}${n}`.slice(0, 15);
      await createHostNetns(host.netns, veth, this.bridge, host.address);
      this.made.netns.push(host.netns);
      this.made.veths.push(veth);
      this.hosts.push(host);
    }
    await Promise.all(this.hosts.map((h) => this.start(h, reg.address)));
    const first = this.hosts[0];
    if (first === undefined) throw new Error('a docker lab needs at least one host');
    await this.api(first).json('POST', '/swarm/init', { ListenAddr: `${first.address}:2377`, AdvertiseAddr: first.address });
    const swarm = await this.api(first).json<{ JoinTokens: { Manager: string; Worker: string } }>('GET', '/swarm');
    for (const h of this.hosts.slice(1)) {
      await this.api(h).json('POST', '/swarm/join', {
        ListenAddr: `${h.address}:2377`,
        AdvertiseAddr: h.address,
        RemoteAddrs: [`${first.address}:2377`],
        JoinToken: h.role === 'manager' ? swarm.JoinTokens.Manager : swarm.JoinTokens.Worker,
      });
    }
  }

  api(host: BenchHost): EngineApi {
    return this.apis.get(host.socket);
  }

  private host(h: BenchHost): DockerHost {
    const found = this.hosts.find((x) => x.name === h.name);
    if (found === undefined) throw new Error(`no docker lab host ${h.name}`);
    return found;
  }

  async kill(h: BenchHost): Promise<void> {
    const host = this.host(h);
    if (host.daemon !== undefined && isProcessAlive(host.daemon.pid, host.daemon.startTime)) process.kill(host.daemon.pid, 'SIGKILL');
    this.apis.reset(host.socket);
  }

  async start(h: BenchHost, registry = this.image.split('/')[0] ?? ''): Promise<void> {
    const host = this.host(h);
    mkdirSync(host.dataRoot, { recursive: true });
    mkdirSync(host.execRoot, { recursive: true });
    const logFd = openSync(host.logFile, 'a');
    const args = [
      `--net=/run/netns/${host.netns}`, '--', 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec dockerd "$@"', host.name,
      '--data-root', host.dataRoot, '--exec-root', host.execRoot, '--pidfile', join(host.execRoot, 'docker.pid'),
      '-H', `unix://${host.socket}`, '--insecure-registry', registry, '--log-level', 'warn',
    ];
    const child = spawn('nsenter', args, { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start dockerd for ${host.name}`);
    // nsenter, unshare and sh exec in place: this PID becomes dockerd's.
    host.daemon = { pid: child.pid, startTime: readProcStat(child.pid)?.startTime ?? '' };
    await waitUntil(`dockerd on ${host.name} to answer (log: ${host.logFile})`, START_TIMEOUT_MS, 200, async () => {
      if (!isProcessAlive(child.pid as number)) throw new Error(`dockerd on ${host.name} exited (log: ${host.logFile})`);
      return (await this.api(host).call('GET', '/_ping')).status === 200 ? true : undefined;
    });
  }

  async cliServiceLs(h: BenchHost): Promise<string> {
    return execText('docker', ['-H', `unix://${h.socket}`, 'service', 'ls']);
  }

  async down(): Promise<void> {
    this.apis.closeAll();
    const note = (what: string, err: unknown): void => console.error(`docker lab down: ${what}: ${(err as Error).message}`);
    // Daemons: SIGTERM (dockerd stops its containers), then SIGKILL whatever is left in the namespaces.
    for (const h of this.hosts) if (h.daemon !== undefined && isProcessAlive(h.daemon.pid, h.daemon.startTime)) process.kill(h.daemon.pid, 'SIGTERM');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (Date.now() < deadline && this.hosts.some((h) => h.daemon !== undefined && isProcessAlive(h.daemon.pid, h.daemon.startTime))) await sleep(200);
    for (const ns of this.made.netns) {
      for (const pid of await netnsPids(ns).catch(() => [])) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    // Containers a killed containerd left: every runc state under the exec roots.
    for (const h of this.hosts) {
      for (const root of runcRoots(h.execRoot)) {
        for (const id of safeReaddir(root)) {
          await runCommand('runc', ['--root', root, 'kill', '--all', id, 'KILL']);
          await runCommand('runc', ['--root', root, 'delete', '--force', id]);
        }
      }
    }
    await sleep(500);
    for (const h of this.hosts) {
      for (const dir of [h.execRoot, h.dataRoot]) await unmountUnder(dir).catch((err: unknown) => note(`unmount ${dir}`, err));
    }
    if (this.registryProc !== undefined && isProcessAlive(this.registryProc.pid, this.registryProc.startTime)) process.kill(this.registryProc.pid, 'SIGKILL');
    for (const ns of this.made.netns) await deleteNetns(ns);
    for (const v of this.made.veths) await deleteLink(v);
    if (this.made.bridge) await deleteLink(this.bridge);
    if (this.made.chain) await removeForwardChain(this.chain).catch((err: unknown) => note('forward chain', err));
    if (this.forwardPolicy !== undefined) await runCommand('iptables', ['-P', 'FORWARD', this.forwardPolicy]);
    for (const h of this.hosts) {
      try {
        rmSync(h.execRoot, { recursive: true, force: true });
      } catch (err) {
        note(`remove ${h.execRoot}`, err);
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
      for (const d of [RUN_ROOT, STATE_ROOT]) if (safeReaddir(d).length === 0) rmSync(d, { recursive: true, force: true });
    } catch (err) {
      note(`remove ${this.dir}`, err);
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** runc state roots under an exec root: directories whose children hold a state.json. */
function runcRoots(execRoot: string): string[] {
  const roots = new Set<string>();
  const walk = (dir: string, depth: number): void => {
    if (depth > 6) return;
    for (const name of safeReaddir(dir)) {
      const p = join(dir, name);
      if (name === 'state.json') roots.add(dirname(dir));
      else if (name !== 'rootfs' && !name.endsWith('.sock') && existsSync(p)) {
        try {
          if (readdirSync(p) !== undefined) walk(p, depth + 1);
        } catch {
          /* not a directory */
        }
      }
    }
  };
  walk(execRoot, 0);
  return [...roots];
}
