// Shared set-up for the executor's tests and benchmark: a registry with a busybox test image, an
// image store and executors on temp data roots, and a cleanup that removes every container, mount,
// cgroup and network namespace they made, also when a test fails.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ImageStore } from '../image/index.js';
import { buildTar, busyboxEntries, pushImage, type ImageConfigSpec, type RegistryFixture, type TarSpec } from '../testing/registry.js';
import { removeCgroupTree } from './cgroups.js';
import { mountsUnder, unmountIfMounted } from './host-mounts.js';
import { deleteNetns, NETNS_DIR } from './netns.js';
import { Runc } from './runc.js';
import { RuncExecutor, type RuncExecutorOptions } from './runc-executor.js';
import { ackShim } from './shim.js';

/** Applets the executor tests use, linked to busybox (the fixture links only a few). */
const EXTRA_APPLETS = ['sleep', 'dd', 'wc', 'pwd', 'env', 'hostname', 'seq', 'head', 'tr', 'grep', 'kill', 'mkdir', 'touch', 'printf', 'date', 'stat', 'od'];

/** busybox plus users: `app` (1000:1000, also in `staff` 50) and `nobody`. */
export async function testImageLayer(): Promise<Buffer> {
  const base = (await busyboxEntries()).filter((e) => e.path !== 'etc/passwd' && e.path !== 'etc/group');
  const have = new Set(base.map((e) => e.path));
  const extra: TarSpec[] = EXTRA_APPLETS.filter((a) => !have.has(`bin/${a}`)).map((a) => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' }));
  return buildTar([
    ...base,
    ...extra,
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
    { type: 'file', path: 'etc/group', content: 'root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n' },
    { type: 'dir', path: 'home' },
    { type: 'dir', path: 'home/app', uid: 1000, gid: 1000 },
    { type: 'dir', path: 'srv' },
    { type: 'file', path: 'srv/seed.txt', content: 'from the image\n' },
  ]);
}

/** Pushes the test image as `repository:tag` with `config` and returns its pull reference. */
export async function pushTestImage(reg: RegistryFixture, layer: Buffer, repository: string, config: ImageConfigSpec = {}, tag = 'latest'): Promise<string> {
  await pushImage(reg, { repository, tag, layers: [layer], config: { Cmd: ['sh'], ...config } });
  return `${reg.host}/${repository}:${tag}`;
}

/** A unique suffix for names shared across the host (cgroup parents, netns prefixes). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * Tracks what tests make. `run()` deletes every container in the executors' runc roots, unmounts
 * everything under the temp dirs, deletes the namespaces with our prefixes and the cgroup parents.
 */
export class ExecutorCleanup {
  private readonly dirs: string[] = [];
  private readonly executors: RuncExecutor[] = [];
  private readonly runcRoots = new Set<string>();
  private readonly cgroupParents = new Set<string>();
  private readonly netnsPrefixes = new Set<string>();
  private readonly deferred: (() => Promise<void>)[] = [];

  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `shoal-${prefix}-`));
    this.dirs.push(dir);
    return dir;
  }

  defer(fn: () => Promise<void>): void {
    this.deferred.push(fn);
  }

  async imageStore(): Promise<ImageStore> {
    return ImageStore.open({ root: await this.tempDir('exec-images'), dockerHubFallback: false });
  }

  /** An executor on a fresh data root (or `dataRoot` to reopen one: a daemon restart). */
  async executor(options: Partial<RuncExecutorOptions> & Pick<RuncExecutorOptions, 'images'>): Promise<RuncExecutor> {
    const dataRoot = options.dataRoot ?? (await this.tempDir('exec'));
    const cgroupParent = options.cgroupParent ?? uniqueName('shoal-test');
    const netnsPrefix = options.netnsPrefix ?? uniqueName('shoaltest');
    this.runcRoots.add(join(dataRoot, 'runc'));
    this.cgroupParents.add(cgroupParent);
    this.netnsPrefixes.add(netnsPrefix);
    const ex = await RuncExecutor.open({ ...options, dataRoot, cgroupParent, netnsPrefix });
    this.executors.push(ex);
    return ex;
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const fn of this.deferred.splice(0).reverse()) await attempt(fn);
    for (const ex of this.executors.splice(0)) await attempt(() => ex.close());
    for (const root of this.runcRoots) {
      const runc = new Runc(root);
      const list = await runc.list().catch(() => []);
      for (const c of list) {
        await attempt(() => runc.kill(c.id, 'KILL', true).catch(() => undefined));
        await attempt(() => runc.delete(c.id, true));
      }
      // Shims of containers that ended wait for an executor to collect their status: release them.
      const tasksDir = join(dirname(root), 'tasks');
      for (const id of await readdir(tasksDir).catch(() => [] as string[])) ackShim(join(tasksDir, id));
    }
    this.runcRoots.clear();
    for (const dir of this.dirs) for (const m of await mountsUnder(dir)) await attempt(() => unmountIfMounted(m));
    const netns = await readdir(NETNS_DIR).catch(() => [] as string[]);
    for (const name of netns) if ([...this.netnsPrefixes].some((p) => name.startsWith(`${p}-`))) await attempt(() => deleteNetns(name));
    this.netnsPrefixes.clear();
    for (const parent of this.cgroupParents) {
      const dirs = execFileSync('sh', ['-c', `ls -d /sys/fs/cgroup/*/${parent}/* /sys/fs/cgroup/${parent}/* 2>/dev/null || true`], { encoding: 'utf8' });
      for (const d of new Set(dirs.split('\n').filter((l) => l !== '').map((l) => l.slice(l.indexOf(parent) - 1)))) await attempt(() => removeCgroupTree(d, `/${parent}`));
      await attempt(() => removeCgroupTree(`/${parent}`, `/${parent}`));
    }
    this.cgroupParents.clear();
    for (const dir of this.dirs.splice(0)) await attempt(() => rm(dir, { recursive: true, force: true }));
    if (errors.length > 0) throw errors[0];
  }
}
