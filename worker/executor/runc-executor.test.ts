// The runc executor against real runc, a real registry (Debian's docker-registry on loopback) and a
// busybox image the test builds and pushes itself. Containers report what they see on stdout; the
// tests read the task's captured JSON-lines log. Every container, mount, cgroup and namespace is
// removed after each test, also when it fails.
import { execFileSync } from 'node:child_process';
import { readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ImageStore } from '../image/index.js';
import { startRegistry, type RegistryFixture } from '../testing/registry.js';
import { cgroupExists, cgroupMode } from './cgroups.js';
import { InvalidTaskSpecError, RuntimeError, TaskImageError } from './errors.js';
import { mountsUnder } from './host-mounts.js';
import { netnsExists } from './netns.js';
import type { RuncExecutor } from './runc-executor.js';
import { readTaskLog } from './task-log.js';
import { ExecutorCleanup, pushTestImage, testImageLayer, uniqueName } from './test-support.js';
import type { ContainerSpec, DependencyGetter, ExitStatus, TaskController, TaskSpec } from './types.js';

let reg: RegistryFixture;
let layer: Buffer;
let image: string;
let images: ImageStore;
const suite = new ExecutorCleanup();
const cleanup = new ExecutorCleanup();
let ex: RuncExecutor;
let taskSeq = 0;

beforeAll(async () => {
  reg = await startRegistry();
  layer = await testImageLayer();
  image = await pushTestImage(reg, layer, 'shoal/exec', { Env: ['PATH=/bin', 'FROM_IMAGE=1', 'OVERRIDE=image'], WorkingDir: '/srv' });
  images = await suite.imageStore();
});
afterAll(async () => {
  await suite.run();
  await reg?.stop();
});
afterEach(async () => {
  await cleanup.run();
});

async function executor(): Promise<RuncExecutor> {
  ex = await cleanup.executor({ images });
  return ex;
}

function task(spec: Partial<ContainerSpec> & { Image?: string }, extra: { resources?: TaskSpec['Resources']; deps?: DependencyGetter; netns?: string; resolvConf?: string } = {}): TaskController {
  const taskId = `t${++taskSeq}-${Date.now().toString(36)}`;
  return ex.controller({
    taskId,
    spec: { ContainerSpec: { Image: image, ...spec }, Resources: extra.resources },
    dependencies: extra.deps,
    networkNamespacePath: extra.netns,
    resolvConf: extra.resolvConf,
  });
}

/** Runs a task to its end and returns its exit status and stdout/stderr lines. */
async function runToEnd(t: TaskController): Promise<{ status: ExitStatus; out: string[]; err: string[] }> {
  await t.prepare();
  await t.start();
  const status = await t.wait();
  const log = readTaskLog(t.inspect().logPath as string);
  return { status, out: log.filter((e) => e.stream === 'stdout').map((e) => e.line), err: log.filter((e) => e.stream === 'stderr').map((e) => e.line) };
}

/** Polls a task's log until `pred` holds (bounded). */
async function waitForLog(t: TaskController, pred: (lines: string[]) => boolean, attempts = 200): Promise<string[]> {
  for (let i = 0; i < attempts; i++) {
    const lines = readTaskLog(t.inspect().logPath as string).map((e) => e.line);
    if (pred(lines)) return lines;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`log never matched; it holds: ${readTaskLog(t.inspect().logPath as string).map((e) => e.line).join(' | ')}`);
}

describe('running a task', () => {
  it('pulls the image and runs its command; exit 0 is complete, stdout and stderr are captured as JSON lines', async () => {
    await executor();
    const t = task({ Command: ['sh', '-c', 'echo hello from $(hostname); echo oops >&2'] });
    const { status, out, err } = await runToEnd(t);
    expect(status).toMatchObject({ state: 'complete', exitCode: 0, oomKilled: false, message: '' });
    expect(out).toEqual([`hello from ${t.taskId}`]);
    expect(err).toEqual(['oops']);
    const entry = readTaskLog(t.inspect().logPath as string)[0];
    expect(entry?.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(t.inspect()).toMatchObject({ state: 'exited', exitCode: 0, imageId: images.get(image)?.id });
  });

  it('starts the container process with no signal ignored or blocked (the shim undoes what its launcher ignores and blocks)', async () => {
    await executor();
    const { status, out } = await runToEnd(task({ Command: ['grep', '-E', '^Sig(Ign|Blk)', '/proc/1/status'] }));
    expect(status.exitCode).toBe(0);
    expect(out).toEqual(['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
  });

  it('reports a non-zero exit as failed with Docker message', async () => {
    await executor();
    const { status } = await runToEnd(task({ Command: ['sh', '-c', 'exit 3'] }));
    expect(status).toMatchObject({ state: 'failed', exitCode: 3, message: 'task: non-zero exit (3)' });
  });

  it('combines Command and Args with the image ENTRYPOINT and CMD as Docker does', async () => {
    const ref = await pushTestImage(reg, layer, 'shoal/exec-entry', { Entrypoint: ['echo', 'ep'], Cmd: ['image-cmd'] });
    await executor();
    const run = async (spec: Partial<ContainerSpec>): Promise<string[]> => (await runToEnd(task({ Image: ref, ...spec }))).out;
    expect(await run({})).toEqual(['ep image-cmd']);
    expect(await run({ Args: ['spec-args'] })).toEqual(['ep spec-args']);
    // Command replaces the ENTRYPOINT and drops the image's CMD.
    expect(await run({ Command: ['echo', 'command'] })).toEqual(['command']);
    expect(await run({ Command: ['echo', 'command'], Args: ['args'] })).toEqual(['command args']);
  });

  it('merges env (spec wins), resolves users from the image, uses the workdir and hostname', async () => {
    await executor();
    const show = ['sh', '-c', 'id; pwd; hostname; echo "F=$FROM_IMAGE O=$OVERRIDE N=$NEW H=$HOME P=$PATH"'];
    const a = await runToEnd(task({ Command: show, Env: ['OVERRIDE=spec', 'NEW=2'], User: 'app', Hostname: 'web-1' }));
    expect(a.out).toEqual(['uid=1000(app) gid=1000(app) groups=50(staff)', '/srv', 'web-1', 'F=1 O=spec N=2 H=/home/app P=/bin']);
    const b = await runToEnd(task({ Command: show, User: '4242:staff', Dir: '/var/made/by/runtime' }));
    expect(b.out.slice(0, 2)).toEqual(['uid=4242 gid=50(staff)', '/var/made/by/runtime']);
    const c = await runToEnd(task({ Command: ['id'], User: 'nobody' }));
    expect(c.out).toEqual(['uid=65534(nobody) gid=65534(nogroup)']);
  });

  it('applies Docker hardening: default capabilities, no-new-privileges, masked and read-only /proc paths', async () => {
    await executor();
    const { out } = await runToEnd(
      task({ Command: ['sh', '-c', 'grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status; wc -c </proc/timer_list; grep " /proc/sys " /proc/mounts | grep -c "ro,"; echo x > /proc/sysrq-trigger || echo denied'] }),
    );
    // 0xa80425fb is Docker's default set (chown … audit_write).
    expect(out.slice(0, 3)).toEqual(['CapEff:\t00000000a80425fb', 'CapBnd:\t00000000a80425fb', 'NoNewPrivs:\t1']);
    expect(out.slice(3)).toEqual(['0', '1', 'denied']);
    const user = await runToEnd(task({ Command: ['grep', '^CapEff', '/proc/self/status'], User: 'app' }));
    expect(user.out).toEqual(['CapEff:\t0000000000000000']);
  });

  it('fails a bad spec before anything runs, naming the cause, and leaves nothing behind', async () => {
    await executor();
    const t = task({ User: 'ghost' });
    await expect(t.prepare()).rejects.toThrow(InvalidTaskSpecError);
    await expect(t.prepare()).rejects.toThrow(/unable to find user ghost/);
    await expect(task({ Image: `${reg.host}/shoal/missing:1` }).prepare()).rejects.toThrow(TaskImageError);
    await expect(task({ Image: `${reg.host}/shoal/missing:1` }).prepare()).rejects.toThrow(`pull ${reg.host}/shoal/missing:1: not found`);
    await expect(task({ Mounts: [{ Type: 'bind', Source: '/nonexistent/dir', Target: '/x' }] }).prepare()).rejects.toThrow(/bind source path does not exist/);
    expect(await mountsUnder(join(ex.opts.dataRoot, 'tasks'))).toEqual([]);
    expect(await readFile(join(ex.opts.dataRoot, 'tasks'), 'utf8').catch((e: NodeJS.ErrnoException) => e.code)).toBe('EISDIR');
    expect(execFileSync('ls', [join(ex.opts.dataRoot, 'tasks')], { encoding: 'utf8' })).toBe('');
    const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(ns).not.toContain(ex.netnsPrefix);
  });

  it('rejects a task whose root cannot be mounted (a layer gone from the cache), naming the image, and leaves nothing behind', async () => {
    const store = await cleanup.imageStore();
    ex = await cleanup.executor({ images: store });
    const { image: pulled } = await store.pull(image);
    // The cache loses the layer's files behind the store's back.
    await rm(join(store.root, 'layers', 'sha256', (pulled.diffIds[0] as string).slice('sha256:'.length), 'fs'), { recursive: true });
    const t = task({ Command: ['true'] });
    const err = await t.prepare().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskImageError);
    expect((err as Error).message).toContain(`mount the root file system of ${image}: mount overlay on `);
    expect(await mountsUnder(join(ex.opts.dataRoot, 'tasks'))).toEqual([]);
    expect(execFileSync('ls', [join(ex.opts.dataRoot, 'tasks')], { encoding: 'utf8' })).toBe('');
    expect(store.mountedImages().size).toBe(0);
  });

  it('reports a command that cannot start as a start failure with runc message', async () => {
    await executor();
    const t = task({ Command: ['/no/such/program'] });
    await t.prepare();
    const err = await t.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as Error).message).toMatch(/starting container failed: .*no\/such\/program.*no such file/);
    expect((await t.wait()).state).toBe('failed');
  });
});

describe('limits', () => {
  it('OOM-kills a process that allocates past its memory limit and reports it', async () => {
    await executor();
    const t = task({ Command: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=96M', 'count=1'] }, { resources: { Limits: { MemoryBytes: 32 * 1024 * 1024 } } });
    const { status } = await runToEnd(t);
    expect(status).toMatchObject({ state: 'failed', exitCode: 137, oomKilled: true });
    expect(status.message).toBe('task: non-zero exit (137): killed by the kernel OOM killer (memory limit reached)');
    expect(t.inspect().oomKilled).toBe(true);
  });

  it('bounds a fork bomb by the pids limit', async () => {
    await executor();
    // A subshell forks until it cannot (ash then gives up); counting with a glob needs no fork.
    const bomb = '(i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done); set -- /proc/[0-9]*; echo procs=$#; kill -9 -1';
    const { out, err } = await runToEnd(task({ Command: ['sh', '-c', bomb] }, { resources: { Limits: { Pids: 16 } } }));
    const procs = Number(/procs=(\d+)/.exec(out.join('\n'))?.[1]);
    expect(procs).toBeGreaterThanOrEqual(10);
    expect(procs).toBeLessThanOrEqual(16);
    expect(err.join('\n')).toMatch(/can't fork/);
  });

  it('sets the CFS quota from NanoCPUs (quota = NanoCPUs / 1e9 × period)', async () => {
    await executor();
    const t = task({ Command: ['sleep', '30'] }, { resources: { Limits: { NanoCPUs: 0.5e9 } } });
    await t.prepare();
    await t.start();
    const path = `/${ex.cgroupParent}/${t.taskId}`;
    const quota =
      (await cgroupMode()) === 'v2'
        ? (await readFile(`/sys/fs/cgroup${path}/cpu.max`, 'utf8')).trim()
        : `${(await readFile(`/sys/fs/cgroup/cpu${path}/cpu.cfs_quota_us`, 'utf8')).trim()} ${(await readFile(`/sys/fs/cgroup/cpu${path}/cpu.cfs_period_us`, 'utf8')).trim()}`;
    expect(quota).toBe('50000 100000');
    await t.terminate();
    await t.remove();
    expect(await cgroupExists(path)).toBe(false);
  });
});

describe('files, mounts and namespaces', () => {
  it('materializes secrets and configs from a tmpfs with their content, mode, uid and gid', async () => {
    await executor();
    const deps: DependencyGetter = {
      secret: (id) => (id === 's1' ? Buffer.from('hunter2') : undefined),
      config: (id) => (id === 'c1' ? Buffer.from('listen 80;\n') : undefined),
    };
    const { out } = await runToEnd(
      task(
        {
          Command: ['sh', '-c', 'cat /run/secrets/db_pass; echo; stat -c "%a %u %g" /run/secrets/db_pass; cat /etc/app.conf; stat -c "%a %u %g" /etc/app.conf; grep " /run/secrets/db_pass " /proc/mounts | cut -d" " -f3'],
          Secrets: [{ SecretID: 's1', SecretName: 'db_pass', File: { Name: 'db_pass', UID: '1000', GID: '50', Mode: 0o400 } }],
          Configs: [{ ConfigID: 'c1', ConfigName: 'app', File: { Name: '/etc/app.conf', UID: '0', GID: '0', Mode: 0o644 } }],
        },
        { deps },
      ),
    );
    expect(out).toEqual(['hunter2', '400 1000 50', 'listen 80;', '644 0 0', 'tmpfs']);
    const missing = task({ Secrets: [{ SecretID: 'nope', SecretName: 'nope', File: { Name: 'nope', UID: '0', GID: '0', Mode: 0o444 } }] }, { deps });
    await expect(missing.prepare()).rejects.toThrow(/secret nope \(nope\) is not in this node's assignments/);
  });

  it('mounts binds, named volumes (seeded from the image), tmpfs, and a read-only root', async () => {
    await executor();
    const host = await cleanup.tempDir('bind');
    await writeFile(join(host, 'in.txt'), 'from the host\n');
    const vol = uniqueName('vol');
    const script = [
      'cat /data/in.txt; echo written > /data/out.txt',
      'cat /srv/seed.txt; echo more > /srv/added.txt',
      'echo scratch > /scratch/f && grep " /scratch " /proc/mounts | cut -d" " -f3',
      'touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly',
    ].join('; ');
    const { out } = await runToEnd(
      task({
        Command: ['sh', '-c', script],
        ReadOnly: true,
        Mounts: [
          { Type: 'bind', Source: host, Target: '/data' },
          { Type: 'volume', Source: vol, Target: '/srv' },
          { Type: 'tmpfs', Target: '/scratch', TmpfsOptions: { SizeBytes: 1024 * 1024 } },
        ],
      }),
    );
    expect(out).toEqual(['from the host', 'from the image', 'tmpfs', 'root-readonly']);
    expect(await readFile(join(host, 'out.txt'), 'utf8')).toBe('written\n');
    // The named volume outlives the task and keeps what the task wrote.
    const second = await runToEnd(task({ Command: ['cat', '/srv/added.txt', '/srv/seed.txt'], Mounts: [{ Type: 'volume', Source: vol, Target: '/srv' }] }));
    expect(second.out).toEqual(['more', 'from the image']);
  });

  it('gives a task a loopback-only network namespace of its own by default, gone with the task', async () => {
    await executor();
    const t = task({ Command: ['sh', '-c', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; cat /sys/class/net/lo/operstate; sleep 3600'] });
    await t.prepare();
    await t.start();
    expect(await waitForLog(t, (l) => l.length >= 2)).toEqual(['lo', 'unknown']);
    const pid = t.inspect().pid as number;
    const [own, host] = await Promise.all([readlink(`/proc/${pid}/ns/net`), readlink('/proc/self/ns/net')]);
    expect(own).toMatch(/^net:\[\d+\]$/);
    expect(own).not.toBe(host);
    await t.remove();
    expect((await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(`${ex.netnsPrefix}-`))).toEqual([]);
  });

  it('joins a network namespace the caller gives with its resolv.conf, and leaves it in place on remove', async () => {
    await executor();
    const name = `${ex.netnsPrefix}-caller`;
    execFileSync('ip', ['netns', 'add', name]);
    execFileSync('ip', ['-n', name, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1']);
    const t = task(
      { Command: ['sh', '-c', 'ls /sys/class/net | sort; cat /etc/resolv.conf; grep -c db.internal /etc/hosts'], Hosts: ['10.0.0.9 db.internal'] },
      { netns: `/run/netns/${name}`, resolvConf: 'nameserver 127.0.0.11' },
    );
    const { out } = await runToEnd(t);
    expect(out).toEqual(['lo', 'probe0', 'probe1', 'nameserver 127.0.0.11', '1']);
    await t.remove();
    expect(await netnsExists(name)).toBe(true);
  });
});

describe('stopping and health', () => {
  it('honours the stop grace period: a process trapping SIGTERM is SIGKILLed after it', async () => {
    await executor();
    const t = task({ Command: ['sh', '-c', 'trap "echo caught TERM" TERM; echo ready; while true; do sleep 0.1; done'], StopGracePeriod: 1e9 });
    await t.prepare();
    await t.start();
    await waitForLog(t, (l) => l.includes('ready'));
    await t.shutdown();
    const status = await t.wait();
    expect(status.exitCode).toBe(137);
    expect(readTaskLog(t.inspect().logPath as string).map((e) => e.line)).toContain('caught TERM');
  });

  it('stops a process that exits on its stop signal without waiting for SIGKILL', async () => {
    await executor();
    const t = task({ Command: ['sh', '-c', 'trap "echo got USR1; exit 0" USR1; echo ready; while true; do sleep 0.1; done'], StopSignal: 'SIGUSR1', StopGracePeriod: 30e9 });
    await t.prepare();
    await t.start();
    await waitForLog(t, (l) => l.includes('ready'));
    await t.shutdown();
    expect(await t.wait()).toMatchObject({ state: 'complete', exitCode: 0 });
    expect(readTaskLog(t.inspect().logPath as string).map((e) => e.line)).toContain('got USR1');
  });

  it('marks a container unhealthy after Retries failed or timed-out probes, and healthy when probes pass', async () => {
    await executor();
    const probe = { Interval: 0.2e9, Timeout: 2e9, Retries: 2 };
    const sick = task({ Command: ['sleep', '60'], Healthcheck: { Test: ['CMD-SHELL', 'test -e /tmp/ok'], ...probe } });
    const well = task({ Command: ['sh', '-c', 'touch /tmp/ok; sleep 60'], Healthcheck: { Test: ['CMD', 'test', '-e', '/tmp/ok'], ...probe } });
    // A probe that outlives its timeout is killed and counts as a failure.
    const slow = task({ Command: ['sleep', '60'], Healthcheck: { Test: ['CMD', 'sleep', '30'], Interval: 0.1e9, Timeout: 0.3e9, Retries: 1 } });
    const healthEvents: string[] = [];
    well.onEvent((e) => {
      if (e.type === 'health') healthEvents.push(e.status);
    });
    for (const t of [sick, well, slow]) {
      await t.prepare();
      await t.start();
    }
    const status = await sick.wait();
    expect(status).toMatchObject({ state: 'failed', unhealthy: true, message: 'task: container unhealthy' });
    expect(sick.inspect().health.status).toBe('unhealthy');
    expect(sick.inspect().health.failingStreak).toBeGreaterThanOrEqual(2);
    expect(sick.inspect().state).toBe('running');
    for (let i = 0; i < 100 && well.inspect().health.status !== 'healthy'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(well.inspect().health.status).toBe('healthy');
    expect(healthEvents).toEqual(['healthy']);
    expect(await slow.wait()).toMatchObject({ unhealthy: true });
    expect(slow.inspect().health.log.at(-1)?.exitCode).toBe(-1);
    await sick.terminate();
    await well.terminate();
    await slow.terminate();
  });

  it('remove deletes the container, its mounts, cgroup, namespace and bundle', async () => {
    await executor();
    const t = task({ Command: ['sleep', '60'], Secrets: [{ SecretID: 's', SecretName: 's', File: { Name: 's', UID: '0', GID: '0', Mode: 0o400 } }] }, { deps: { secret: () => Buffer.from('x'), config: () => undefined } });
    await t.prepare();
    await t.start();
    const dir = join(ex.opts.dataRoot, 'tasks', t.taskId);
    expect((await mountsUnder(dir)).length).toBe(2);
    await t.remove({ removeLogs: true });
    expect(await ex.runc.state(t.taskId)).toBeUndefined();
    expect(await mountsUnder(dir)).toEqual([]);
    expect(await cgroupExists(`/${ex.cgroupParent}/${t.taskId}`)).toBe(false);
    expect(await stat(dir).catch(() => 'gone')).toBe('gone');
    expect(ex.taskIds()).not.toContain(t.taskId);
    expect(t.inspect().state).toBe('removed');
  });
});
