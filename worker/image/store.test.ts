// The image store against a real registry (Debian's docker-registry on loopback), with images
// built from busybox-static and pushed by the test itself. Mounts are real overlayfs mounts.
import { execFileSync } from 'node:child_process';
import { lstat, readFile, readlink, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BUSYBOX_HARDLINK_APPLETS,
  BUSYBOX_SYMLINK_APPLETS,
  buildTar,
  busyboxEntries,
  HOST_ARCH,
  pushImage,
  pushIndex,
  startRegistry,
  type RegistryFixture,
  type TarSpec,
} from '../testing/registry.js';
import { ImageStore } from './store.js';
import { Cleanup, listTree } from './store-test-support.js';

let reg: RegistryFixture;
let busyboxLayer: Buffer;
const cleanup = new Cleanup();

beforeAll(async () => {
  reg = await startRegistry();
  busyboxLayer = buildTar(await busyboxEntries());
});
afterAll(async () => {
  await reg?.stop();
});
afterEach(async () => {
  await cleanup.run();
});

function chroot(rootfs: string, ...args: string[]): string {
  return execFileSync('chroot', [rootfs, ...args], { encoding: 'utf8', timeout: 10_000 });
}

describe('pulling and mounting an image', () => {
  it('pulls busybox, mounts it on overlayfs, and runs a program from it', async () => {
    const pushed = await pushImage(reg, {
      repository: 'shoal/busybox',
      tag: '1.36',
      layers: [busyboxLayer],
      config: {
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: ['echo hello'],
        Env: ['PATH=/bin', 'GREETING=hi'],
        User: 'nobody',
        WorkingDir: '/tmp',
        StopSignal: 'SIGQUIT',
        ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
        Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 5e9, Timeout: 2e9, Retries: 3 },
      },
    });
    const store = await cleanup.store();
    const { image, downloadedLayers } = await store.pull(`${reg.host}/shoal/busybox:1.36`);
    expect(downloadedLayers).toBe(1);
    expect(image.id).toBe(pushed.configDigest);
    expect(image.diffIds).toEqual(pushed.diffIds);
    expect(image.references).toEqual([`${reg.host}/shoal/busybox:1.36`]);
    expect(image.repoDigests).toEqual([`${reg.host}/shoal/busybox@${pushed.manifestDigest}`]);
    expect(image.config).toEqual({
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo hello'],
      env: ['PATH=/bin', 'GREETING=hi'],
      user: 'nobody',
      workingDir: '/tmp',
      stopSignal: 'SIGQUIT',
      exposedPorts: ['8080/tcp', '53/udp'],
      healthcheck: { test: ['CMD-SHELL', 'true'], intervalNs: 5e9, timeoutNs: 2e9, startPeriodNs: 0, startIntervalNs: 0, retries: 3 },
      labels: {},
      volumes: [],
    });
    expect(store.get('127.0.0.1:' + reg.host.split(':')[1] + '/shoal/busybox:1.36')?.id).toBe(image.id);
    expect(store.get(`${reg.host}/shoal/busybox@${pushed.manifestDigest}`)?.id).toBe(image.id);

    const containerDir = await cleanup.tempDir('ctr');
    const mount = await store.mountRootfs(image.id, containerDir);
    cleanup.defer(() => mount.unmount());
    expect(chroot(mount.rootfs, '/bin/busybox', 'echo', 'hi')).toBe('hi\n');
    expect(chroot(mount.rootfs, '/bin/sh', '-c', 'echo $((6*7)) > /tmp/out; cat /tmp/out')).toBe('42\n');
    // Writes land in the container's upper dir, never in the shared layer cache.
    expect(await readFile(join(mount.upperDir, 'tmp/out'), 'utf8')).toBe('42\n');
    expect(execFileSync('findmnt', ['-n', '-o', 'FSTYPE', mount.rootfs], { encoding: 'utf8' }).trim()).toBe('overlay');

    // A second pull of the same tag downloads nothing and sends no blob request.
    const before = reg.requests.length;
    const again = await store.pull(`${reg.host}/shoal/busybox:1.36`);
    expect(again.downloadedLayers).toBe(0);
    expect(reg.requests.slice(before).filter((r) => r.path.includes('/blobs/'))).toEqual([]);

    await mount.unmount();
    expect(execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' })).not.toContain(mount.rootfs);
    await mount.unmount(); // idempotent
  });

  it('keeps hard links, symlinks, modes, owners and mtimes', async () => {
    const entries: TarSpec[] = [
      ...(await busyboxEntries()),
      { type: 'dir', path: 'srv', mode: 0o750, uid: 33, gid: 33, mtime: 1_600_000_000 },
      { type: 'file', path: 'srv/setuid', content: '#!/bin/sh\n', mode: 0o4755, uid: 1000, gid: 100, mtime: 1_500_000_000 },
      { type: 'file', path: 'srv/secret', content: 'x', mode: 0o600, uid: 1, gid: 2 },
      { type: 'symlink', path: 'srv/abs', target: '/etc/passwd', uid: 5, gid: 6, mtime: 1_400_000_000 },
      { type: 'symlink', path: 'srv/dangling', target: 'nowhere' },
      { type: 'fifo', path: 'srv/pipe', mode: 0o620 },
      { type: 'file', path: `srv/${'long-'.repeat(30)}name`, content: 'long' },
    ];
    await pushImage(reg, { repository: 'shoal/attrs', tag: 'v1', layers: [buildTar(entries)], format: 'docker' });
    const store = await cleanup.store();
    const { image } = await store.pull(`${reg.host}/shoal/attrs:v1`);
    const mount = await store.mountRootfs(image.id, await cleanup.tempDir('ctr'));
    cleanup.defer(() => mount.unmount());
    const r = (p: string): string => join(mount.rootfs, p);

    const busybox = await stat(r('bin/busybox'));
    expect(busybox.mode & 0o7777).toBe(0o755);
    expect(busybox.nlink).toBe(1 + BUSYBOX_HARDLINK_APPLETS.length);
    for (const applet of BUSYBOX_HARDLINK_APPLETS) expect((await lstat(r(`bin/${applet}`))).ino).toBe(busybox.ino);
    for (const applet of BUSYBOX_SYMLINK_APPLETS) expect(await readlink(r(`bin/${applet}`))).toBe('busybox');
    expect(chroot(mount.rootfs, '/bin/echo', 'via-symlink')).toBe('via-symlink\n');
    expect(chroot(mount.rootfs, '/bin/cat', '/etc/group')).toContain('nobody');

    const srv = await stat(r('srv'));
    expect([srv.mode & 0o7777, srv.uid, srv.gid, srv.mtimeMs / 1000]).toEqual([0o750, 33, 33, 1_600_000_000]);
    const setuid = await stat(r('srv/setuid'));
    expect([setuid.mode & 0o7777, setuid.uid, setuid.gid, setuid.mtimeMs / 1000]).toEqual([0o4755, 1000, 100, 1_500_000_000]);
    const secret = await stat(r('srv/secret'));
    expect([secret.mode & 0o7777, secret.uid, secret.gid]).toEqual([0o600, 1, 2]);
    const abs = await lstat(r('srv/abs'));
    expect([abs.isSymbolicLink(), abs.uid, abs.gid, abs.mtimeMs / 1000]).toEqual([true, 5, 6, 1_400_000_000]);
    expect(await readlink(r('srv/abs'))).toBe('/etc/passwd');
    expect(await readlink(r('srv/dangling'))).toBe('nowhere');
    const pipe = await lstat(r('srv/pipe'));
    expect([pipe.isFIFO(), pipe.mode & 0o7777]).toEqual([true, 0o620]);
    expect(await readFile(r(`srv/${'long-'.repeat(30)}name`), 'utf8')).toBe('long');
    expect((await stat(r('tmp'))).mode & 0o7777).toBe(0o1777);
    expect(chroot(mount.rootfs, '/bin/stat', '-c', '%a %u %g', '/srv/setuid')).toBe('4755 1000 100\n');
  });

  it('applies whiteouts and opaque directories across two layers', async () => {
    const base = buildTar([
      ...(await busyboxEntries()),
      { type: 'dir', path: 'data' },
      { type: 'file', path: 'data/keep', content: 'kept' },
      { type: 'file', path: 'data/gone', content: 'deleted in layer 2' },
      { type: 'dir', path: 'data/gonedir' },
      { type: 'file', path: 'data/gonedir/inner', content: 'whole dir deleted' },
      { type: 'dir', path: 'opq' },
      { type: 'file', path: 'opq/old', content: 'hidden by the opaque dir' },
      { type: 'dir', path: 'opq/sub' },
      { type: 'file', path: 'opq/sub/old2', content: 'hidden too' },
      { type: 'file', path: 'replaced', content: 'a file in layer 1' },
    ]);
    const top = buildTar([
      { type: 'dir', path: 'data' },
      { type: 'file', path: 'data/.wh.gone', content: '' },
      { type: 'file', path: 'data/.wh.gonedir', content: '' },
      { type: 'file', path: 'data/new', content: 'added in layer 2' },
      { type: 'dir', path: 'opq' },
      { type: 'file', path: 'opq/.wh..wh..opq', content: '' },
      { type: 'file', path: 'opq/fresh', content: 'from layer 2' },
      { type: 'file', path: '.wh.replaced', content: '' },
      { type: 'dir', path: 'replaced' },
      { type: 'file', path: 'replaced/now-a-dir', content: 'x' },
      { type: 'file', path: '.wh..wh.plnk', content: '' },
    ]);
    const pushed = await pushImage(reg, { repository: 'shoal/layers', tag: 'two', layers: [base, top] });
    const store = await cleanup.store();
    const { image } = await store.pull(`${reg.host}/shoal/layers:two`);
    expect(image.diffIds).toEqual(pushed.diffIds);
    const mount = await store.mountRootfs(image.id, await cleanup.tempDir('ctr'));
    cleanup.defer(() => mount.unmount());

    expect((await readdir(join(mount.rootfs, 'data'))).sort()).toEqual(['keep', 'new']);
    expect((await readdir(join(mount.rootfs, 'opq'))).sort()).toEqual(['fresh']);
    expect(await readdir(join(mount.rootfs, 'replaced'))).toEqual(['now-a-dir']);
    expect(chroot(mount.rootfs, '/bin/sh', '-c', 'test -e /data/gone || echo absent')).toBe('absent\n');
    expect(await readdir(mount.rootfs)).not.toContain('.wh..wh.plnk');

    // In the cache, the top layer holds overlayfs's own markers: a 0/0 char device and the opaque xattr.
    const topDir = join(store.root, 'layers/sha256', (pushed.diffIds[1] as string).slice(7), 'fs');
    const wh = await lstat(join(topDir, 'data/gone'));
    expect([wh.isCharacterDevice(), wh.rdev]).toEqual([true, 0]);
    expect(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', join(topDir, 'opq')], { encoding: 'utf8' })).toBe('y');

    // Deleting in the container whites out in its upper dir and leaves the layers alone.
    chroot(mount.rootfs, '/bin/busybox', 'rm', '/data/keep');
    expect(await readdir(join(mount.rootfs, 'data'))).toEqual(['new']);
    const baseDir = join(store.root, 'layers/sha256', (pushed.diffIds[0] as string).slice(7), 'fs');
    expect(await readFile(join(baseDir, 'data/keep'), 'utf8')).toBe('kept');
  });

  it('picks this machine’s platform from a manifest list and from an OCI index', async () => {
    const marker = (text: string): Buffer => buildTar([{ type: 'file', path: 'platform', content: text }]);
    const other = HOST_ARCH === 's390x' ? 'ppc64le' : 's390x';
    const ours = await pushImage(reg, { repository: 'shoal/multi', layers: [marker('ours')], format: 'docker' });
    const foreign = await pushImage(reg, { repository: 'shoal/multi', layers: [marker('foreign')], architecture: other, format: 'docker' });
    const windows = await pushImage(reg, { repository: 'shoal/multi', layers: [marker('windows')], os: 'windows', format: 'docker' });
    for (const format of ['docker', 'oci'] as const) {
      await pushIndex(
        reg,
        'shoal/multi',
        format,
        [
          { image: foreign, platform: { os: 'linux', architecture: other } },
          { image: windows, platform: { os: 'windows', architecture: HOST_ARCH } },
          { image: ours, platform: { os: 'linux', architecture: HOST_ARCH } },
        ],
        format,
      );
      const store = await cleanup.store();
      const { image } = await store.pull(`${reg.host}/shoal/multi:${format}`);
      expect(image.id).toBe(ours.configDigest);
      expect(image.repoDigests).toEqual([`${reg.host}/shoal/multi@${ours.manifestDigest}`]);
      const mount = await store.mountRootfs(image.id, await cleanup.tempDir('ctr'));
      cleanup.defer(() => mount.unmount());
      expect(await readFile(join(mount.rootfs, 'platform'), 'utf8')).toBe('ours');
    }
    // Asking for another platform (a daemon option) picks that entry.
    const s390 = await cleanup.store({ platform: { os: 'linux', architecture: other } });
    expect((await s390.pull(`${reg.host}/shoal/multi:oci`)).image.id).toBe(foreign.configDigest);
  });

  it('downloads each layer once when pulls of the same image run concurrently', async () => {
    const shared = buildTar([...(await busyboxEntries()), { type: 'file', path: 'shared', content: 'base' }]);
    const a = await pushImage(reg, { repository: 'shoal/conc-a', tag: 'v1', layers: [shared, buildTar([{ type: 'file', path: 'a', content: 'a' }])] });
    const b = await pushImage(reg, { repository: 'shoal/conc-b', tag: 'v1', layers: [shared, buildTar([{ type: 'file', path: 'b', content: 'b' }])] });
    const store = await cleanup.store();
    const results = await Promise.all([
      store.pull(`${reg.host}/shoal/conc-a:v1`),
      store.pull(`${reg.host}/shoal/conc-a:v1`),
      store.pull(`${reg.host}/shoal/conc-a:v1`),
      store.pull(`${reg.host}/shoal/conc-b:v1`),
    ]);
    expect(new Set(results.map((r) => r.image.id))).toEqual(new Set([a.configDigest, b.configDigest]));
    // The shared base layer went over the wire once, whichever repository fetched it.
    const baseGets = reg.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${a.layerDigests[0]}`)).length;
    expect(baseGets).toBe(1);
    expect(reg.blobGets(a.layerDigests[1] as string)).toBe(1);
    expect(reg.blobGets(b.layerDigests[1] as string)).toBe(1);
    expect(results.reduce((n, r) => n + r.downloadedLayers, 0)).toBe(3);
    expect(await readdir(join(store.root, 'layers/sha256'))).toHaveLength(3);
  });

  it('pulls Docker Hub names through a configured mirror', async () => {
    const pushed = await pushImage(reg, { repository: 'library/busybox', tag: '1.36', layers: [busyboxLayer] });
    const store = await cleanup.store({ registryMirrors: [`http://127.0.0.1:1`, `http://${reg.host}/`] });
    const { image } = await store.pull('busybox:1.36');
    expect(image.id).toBe(pushed.configDigest);
    expect(image.references).toEqual(['docker.io/library/busybox:1.36']);
    expect(store.get('busybox:1.36')?.id).toBe(image.id);
    expect(store.get('docker.io/library/busybox:1.36')?.id).toBe(image.id);
  });

  it('moves a tag to the newly pulled image and reopens with what it had', async () => {
    const v1 = await pushImage(reg, { repository: 'shoal/moving', tag: 'latest', layers: [buildTar([{ type: 'file', path: 'v', content: '1' }])] });
    const store = await cleanup.store();
    await store.pull(`${reg.host}/shoal/moving`);
    const v2 = await pushImage(reg, { repository: 'shoal/moving', tag: 'latest', layers: [buildTar([{ type: 'file', path: 'v', content: '2' }])] });
    await store.pull(`${reg.host}/shoal/moving`);
    expect(store.get(`${reg.host}/shoal/moving:latest`)?.id).toBe(v2.configDigest);
    expect(store.get(v1.configDigest)?.references).toEqual([]);

    const reopened = await ImageStore.open({ root: store.root, dockerHubFallback: false });
    expect(reopened.list().map((i) => i.id).sort()).toEqual([v1.configDigest, v2.configDigest].sort());
    const mount = await reopened.mountRootfs(`${reg.host}/shoal/moving`, await cleanup.tempDir('ctr'));
    cleanup.defer(() => mount.unmount());
    expect(await readFile(join(mount.rootfs, 'v'), 'utf8')).toBe('2');
  });
});

describe('garbage collection', () => {
  it('removes images not in use and layers no image needs, never a mounted image', async () => {
    const base = buildTar([{ type: 'file', path: 'base', content: 'shared' }]);
    const a = await pushImage(reg, { repository: 'shoal/gc-a', tag: 'v1', layers: [base, buildTar([{ type: 'file', path: 'a', content: 'a' }])] });
    const b = await pushImage(reg, { repository: 'shoal/gc-b', tag: 'v1', layers: [base, buildTar([{ type: 'file', path: 'b', content: 'b' }])] });
    const store = await cleanup.store();
    await store.pull(`${reg.host}/shoal/gc-a:v1`);
    await store.pull(`${reg.host}/shoal/gc-b:v1`);
    const mount = await store.mountRootfs(b.configDigest, await cleanup.tempDir('ctr'));
    cleanup.defer(() => mount.unmount());

    // a is in use by the caller, b is mounted: nothing goes.
    expect(await store.gc([`${reg.host}/shoal/gc-a:v1`])).toEqual({ removedImages: [], removedLayers: [] });
    await mount.unmount();
    const first = await store.gc([a.configDigest]);
    expect(first.removedImages).toEqual([b.configDigest]);
    expect(first.removedLayers).toEqual([b.diffIds[1]]);
    expect(store.get(`${reg.host}/shoal/gc-b:v1`)).toBeUndefined();
    const second = await store.gc([]);
    expect(second.removedImages).toEqual([a.configDigest]);
    expect([...second.removedLayers].sort()).toEqual([a.diffIds[0], a.diffIds[1]].sort());
    expect(await listTree(store.root)).toEqual(['images', 'images/sha256', 'l', 'layers', 'layers/sha256', 'tmp']);
    await expect(store.mountRootfs(a.configDigest, await cleanup.tempDir('ctr'))).rejects.toMatchObject({ code: 'ERR_IMAGE_NOT_PRESENT' });
  });

  it('never breaks a pull that runs while gc does', async () => {
    const layers = [buildTar([{ type: 'file', path: 'p', content: 'racing' }]), buildTar([{ type: 'file', path: 'q', content: 'gc' }])];
    const pushed = await pushImage(reg, { repository: 'shoal/gc-race', tag: 'v1', layers });
    const store = await cleanup.store();
    for (let round = 0; round < 5; round++) {
      const [pulled] = await Promise.all([store.pull(`${reg.host}/shoal/gc-race:v1`), store.gc([]), store.gc([])]);
      const mount = await store.mountRootfs(pulled.image.id, await cleanup.tempDir('ctr'));
      expect(await readFile(join(mount.rootfs, 'p'), 'utf8')).toBe('racing');
      await mount.unmount();
      expect((await store.gc([])).removedLayers.length).toBe(pushed.diffIds.length);
    }
  });

  it('keeps what a mount made before a daemon restart still uses', async () => {
    const pushed = await pushImage(reg, { repository: 'shoal/gc-restart', tag: 'v1', layers: [buildTar([{ type: 'file', path: 'r', content: 'restart' }])] });
    const before = await cleanup.store();
    await before.pull(`${reg.host}/shoal/gc-restart:v1`);
    const mount = await before.mountRootfs(pushed.configDigest, await cleanup.tempDir('ctr'));
    cleanup.defer(() => mount.unmount());
    // A new store on the same root knows nothing of that mount but finds it in the mount table.
    const after = await ImageStore.open({ root: before.root, dockerHubFallback: false });
    expect(await after.gc([])).toEqual({ removedImages: [], removedLayers: [] });
    expect(await readFile(join(mount.rootfs, 'r'), 'utf8')).toBe('restart');
    await mount.unmount();
    expect(await after.gc([])).toEqual({ removedImages: [pushed.configDigest], removedLayers: pushed.diffIds });
  });
});
