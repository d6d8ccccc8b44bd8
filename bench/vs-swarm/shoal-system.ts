// Shoal under test: a `shoal lab` (hosts as network namespaces, each with its own shoald, a
// registry seeded with busybox on the lab bridge), driven through bin/shoal like a user.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { labDir, readState, type LabState } from '../../cli/lab/state.js';
import { isProcessAlive } from '../../cli/proc.js';
import { ApiPool, type BenchHost, type SystemUnderTest, waitUntil } from './system.js';
import type { EngineApi } from './api.js';

const REPO = join(import.meta.dirname, '..', '..');
const SHOAL = join(REPO, 'bin', 'shoal');
const LAB_UP_TIMEOUT_MS = 240_000;

function runShoal(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SHOAL, ...args], { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`shoal ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export class ShoalSystem implements SystemUnderTest {
  readonly name = 'shoal' as const;
  private readonly apis = new ApiPool();

  private constructor(
    private readonly labRoot: string,
    private readonly labName: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly state: LabState,
    readonly hosts: readonly BenchHost[],
    readonly image: string,
  ) {}

  /** `shoal lab up --name NAME --managers M --workers W` under `labRoot`. */
  static async up(labRoot: string, labName: string, managers: number, workers: number): Promise<ShoalSystem> {
    const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LAB_ROOT: labRoot };
    delete env['DOCKER_HOST'];
    delete env['SHOAL_HOST'];
    try {
      await runShoal(['lab', 'up', '--name', labName, '--managers', String(managers), '--workers', String(workers)], env, LAB_UP_TIMEOUT_MS);
    } catch (err) {
      await runShoal(['lab', 'down', '--name', labName], env).catch(() => undefined);
      throw err;
    }
    const state = readState(labDir(labRoot, labName));
    if (state === undefined || state.registry.address === undefined) throw new Error(`lab ${labName} has no state after lab up`);
    const hosts = state.hosts.map((h): BenchHost => ({ name: h.name, netns: h.netns, socket: h.socket, address: h.address, role: h.role }));
    return new ShoalSystem(labRoot, labName, env, state, hosts, `${state.registry.address}/busybox:latest`);
  }

  api(host: BenchHost): EngineApi {
    return this.apis.get(host.socket);
  }

  /**
   * SIGKILL the host's shoald by the PID in the lab's state, from this process, as the Docker
   * side does (through `shoal lab kill` the figures would include a CLI start-up before the kill).
   */
  async kill(host: BenchHost): Promise<void> {
    const ref = readState(labDir(this.labRoot, this.labName))?.hosts.find((h) => h.name === host.name)?.daemon;
    if (ref !== undefined && isProcessAlive(ref.pid, ref.startTime || undefined)) {
      process.kill(ref.pid, 'SIGKILL');
      await waitUntil(`${host.name}'s shoald to die`, 10_000, 20, async () => (isProcessAlive(ref.pid, ref.startTime || undefined) ? undefined : true));
    } else {
      await runShoal(['lab', 'kill', '--name', this.labName, host.name], this.env);
    }
    this.apis.reset(host.socket);
  }

  async start(host: BenchHost): Promise<void> {
    await runShoal(['lab', 'start', '--name', this.labName, host.name], this.env);
    await waitUntil(`${host.name}'s shoald to answer`, 60_000, 100, async () => ((await this.api(host).call('GET', '/_ping')).status === 200 ? true : undefined));
  }

  cliServiceLs(host: BenchHost): Promise<string> {
    return runShoal(['service', 'ls'], { ...this.env, SHOAL_HOST: `unix://${host.socket}` });
  }

  async down(): Promise<void> {
    this.apis.closeAll();
    await runShoal(['lab', 'down', '--name', this.labName], this.env).catch((err: unknown) => console.error(`shoal lab down: ${(err as Error).message}`));
  }

  get registry(): string {
    return this.state.registry.address ?? '';
  }
}
