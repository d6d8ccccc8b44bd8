// Bad input: every failure is an ImagePullError naming the image and the cause, and the layer
// cache holds nothing from it afterwards.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildTar, busyboxEntries, HOST_ARCH, pushBlob, pushImage, pushIndex, pushManifest, startRegistry, type RegistryFixture } from '../testing/registry.js';
import { ImagePullError } from './errors.js';
import type { ImageStore } from './store.js';
import { Cleanup, listTree } from './store-test-support.js';

let reg: RegistryFixture;
const cleanup = new Cleanup();

beforeAll(async () => {
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
});
afterEach(async () => {
  reg.truncateBlobs.clear();
  reg.stallPaths.clear();
  await cleanup.run();
});

/** A busybox layer with a file naming the test, so no two tests share (or corrupt) a blob. */
async function uniqueBusybox(name: string): Promise<Buffer> {
  return buildTar([...(await busyboxEntries()), { type: 'file', path: 'test-name', content: name }]);
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pulls `image` expecting an ImagePullError; checks the store's files did not change. */
async function expectPullError(store: ImageStore, image: string, code: string, cause: RegExp, pullOptions = {}): Promise<ImagePullError> {
  const before = await listTree(store.root);
  let caught: unknown;
  try {
    await store.pull(image, pullOptions);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ImagePullError);
  const err = caught as ImagePullError;
  expect({ code: err.code, message: err.message }).toMatchObject({ code, message: expect.stringMatching(cause) });
  expect(err.message.startsWith(`pull ${image}: `)).toBe(true);
  expect(err.image).toBe(image);
  expect(await listTree(store.root)).toEqual(before);
  expect(store.list()).toEqual([]);
  return err;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('pull failures name the image and the cause and leave the cache clean', () => {
  it('a tag or repository the registry does not have', async () => {
    await pushImage(reg, { repository: 'shoal/exists', tag: 'v1', layers: [buildTar([{ type: 'file', path: 'f', content: 'exists' }])] });
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/exists:nope`, 'ERR_IMAGE_NOT_FOUND', /: not found: manifest shoal\/exists:nope: MANIFEST_UNKNOWN: manifest unknown \(HTTP 404\)$/);
    await expectPullError(store, `${reg.host}/shoal/never-pushed`, 'ERR_IMAGE_NOT_FOUND', /: not found: manifest shoal\/never-pushed:latest: MANIFEST_UNKNOWN.*HTTP 404/);
    await expectPullError(store, `${reg.host}/shoal/exists@sha256:${'0'.repeat(64)}`, 'ERR_IMAGE_NOT_FOUND', /HTTP 404/);
  });

  it('a malformed reference', async () => {
    const store = await cleanup.store();
    await expectPullError(store, 'Busybox:latest', 'ERR_IMAGE_INVALID_REFERENCE', /must be lowercase/);
  });

  it('an unreachable registry', async () => {
    const store = await cleanup.store();
    const port = await freePort();
    await expectPullError(store, `127.0.0.1:${port}/shoal/app:1`, 'ERR_IMAGE_REGISTRY_UNREACHABLE', /registry http:\/\/127\.0\.0\.1:\d+ unreachable: .*ECONNREFUSED/);
  });

  it('a layer blob whose content does not match its digest', async () => {
    const pushed = await pushImage(reg, { repository: 'shoal/corrupt-layer', tag: 'v1', layers: [await uniqueBusybox('corrupt-layer')] });
    await reg.corruptBlob(pushed.layerDigests[0] as string);
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/corrupt-layer:v1`, 'ERR_IMAGE_DIGEST_MISMATCH', new RegExp(`blob ${pushed.layerDigests[0]}: digest mismatch: received content has digest sha256:`));
  });

  it('a config blob whose content does not match its digest', async () => {
    const pushed = await pushImage(reg, { repository: 'shoal/corrupt-config', tag: 'v1', layers: [buildTar([{ type: 'file', path: 'f', content: 'corrupt-config' }])] });
    await reg.corruptBlob(pushed.configDigest);
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/corrupt-config:v1`, 'ERR_IMAGE_DIGEST_MISMATCH', /digest mismatch/);
  });

  it('a layer whose uncompressed content does not match the config’s diff ID', async () => {
    const layer = buildTar([{ type: 'file', path: 'f', content: 'real' }]);
    const gz = gzipSync(layer);
    const layerDigest = await pushBlob(reg, 'shoal/diffid', gz);
    const lie = sha256(buildTar([{ type: 'file', path: 'f', content: 'claimed' }]));
    const config = Buffer.from(JSON.stringify({ architecture: HOST_ARCH, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [lie] } }));
    const configDigest = await pushBlob(reg, 'shoal/diffid', config);
    const mt = 'application/vnd.oci.image.manifest.v1+json';
    const manifest = {
      schemaVersion: 2,
      mediaType: mt,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: gz.length }],
    };
    await pushManifest(reg, 'shoal/diffid', 'v1', Buffer.from(JSON.stringify(manifest)), mt);
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/diffid:v1`, 'ERR_IMAGE_DIGEST_MISMATCH', new RegExp(`uncompressed content has digest ${sha256(layer)}, the image config says ${lie}`));
  });

  it('a blob download cut off half way (retried, then reported)', async () => {
    const pushed = await pushImage(reg, { repository: 'shoal/truncated', tag: 'v1', layers: [await uniqueBusybox('truncated')] });
    reg.truncateBlobs.add(pushed.layerDigests[0] as string);
    const store = await cleanup.store({ blobAttempts: 2 });
    await expectPullError(store, `${reg.host}/shoal/truncated:v1`, 'ERR_IMAGE_BLOB_TRUNCATED', new RegExp(`blob ${pushed.layerDigests[0]}: download cut off after \\d+ of ${pushed.layerBytes} bytes`));
    expect(reg.blobGets(pushed.layerDigests[0] as string)).toBe(2);
  });

  it('a registry that stops sending in the middle of a blob or a manifest', async () => {
    const pushed = await pushImage(reg, { repository: 'shoal/stall', tag: 'v1', layers: [await uniqueBusybox('stall')] });
    reg.stallPaths.add(`/blobs/${pushed.layerDigests[0]}`);
    const store = await cleanup.store({ blobAttempts: 2, blobIdleTimeoutMs: 300 });
    await expectPullError(store, `${reg.host}/shoal/stall:v1`, 'ERR_IMAGE_BLOB_TRUNCATED', new RegExp(`blob ${pushed.layerDigests[0]}: no data for 300 ms`));
    expect(reg.blobGets(pushed.layerDigests[0] as string)).toBe(2);

    reg.stallPaths.clear();
    reg.stallPaths.add('/shoal/stall/manifests/v1');
    const impatient = await cleanup.store({ requestTimeoutMs: 300 });
    await expectPullError(impatient, `${reg.host}/shoal/stall:v1`, 'ERR_IMAGE_BLOB_TRUNCATED', /manifest shoal\/stall:v1: response body not complete within 300 ms/);
  });

  it('a blob with the right digest that is not a gzip tar', async () => {
    const notGzip = Buffer.from('this is not a gzip stream at all'.repeat(10));
    const layerDigest = await pushBlob(reg, 'shoal/not-gzip', notGzip);
    const config = Buffer.from(JSON.stringify({ architecture: HOST_ARCH, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(notGzip)] } }));
    const configDigest = await pushBlob(reg, 'shoal/not-gzip', config);
    const mt = 'application/vnd.docker.distribution.manifest.v2+json';
    const manifest = {
      schemaVersion: 2,
      mediaType: mt,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: layerDigest, size: notGzip.length }],
    };
    await pushManifest(reg, 'shoal/not-gzip', 'v1', Buffer.from(JSON.stringify(manifest)), mt);
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/not-gzip:v1`, 'ERR_IMAGE_BAD_LAYER', new RegExp(`layer ${layerDigest} is not a valid gzip-compressed tar archive: incorrect header check`));
  });

  it('a layer with entries that would escape it or write through a symlink', async () => {
    await pushImage(reg, { repository: 'shoal/escape', tag: 'dotdot', layers: [buildTar([{ type: 'file', path: '../../escaped', content: 'x' }])] });
    await pushImage(reg, {
      repository: 'shoal/escape',
      tag: 'symlink',
      layers: [buildTar([{ type: 'symlink', path: 'etc', target: '/etc' }, { type: 'file', path: 'etc/shoal-escaped', content: 'x' }])],
    });
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/escape:dotdot`, 'ERR_IMAGE_BAD_LAYER', /tar entry "..\/..\/escaped" escapes the layer/);
    await expectPullError(store, `${reg.host}/shoal/escape:symlink`, 'ERR_IMAGE_BAD_LAYER', /layer path etc is used as a directory but is not one/);
    await expect(readFile('/etc/shoal-escaped')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a layer compressed in a way this worker cannot read (zstd)', async () => {
    const layer = Buffer.from('pretend zstd');
    const layerDigest = await pushBlob(reg, 'shoal/zstd', layer);
    const config = Buffer.from(JSON.stringify({ architecture: HOST_ARCH, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
    const configDigest = await pushBlob(reg, 'shoal/zstd', config);
    const mt = 'application/vnd.oci.image.manifest.v1+json';
    const manifest = {
      schemaVersion: 2,
      mediaType: mt,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: layerDigest, size: layer.length }],
    };
    await pushManifest(reg, 'shoal/zstd', 'v1', Buffer.from(JSON.stringify(manifest)), mt);
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/zstd:v1`, 'ERR_IMAGE_UNSUPPORTED', /media type application\/vnd.oci.image.layer.v1.tar\+zstd, which this worker cannot unpack/);
    expect(reg.blobGets(layerDigest)).toBe(0);
  });

  it('a manifest list without this platform', async () => {
    const other = HOST_ARCH === 's390x' ? 'ppc64le' : 's390x';
    const img = await pushImage(reg, { repository: 'shoal/foreign', layers: [buildTar([{ type: 'file', path: 'f', content: 'f' }])], architecture: other });
    await pushIndex(reg, 'shoal/foreign', 'v1', [{ image: img, platform: { os: 'linux', architecture: other } }]);
    const store = await cleanup.store();
    await expectPullError(store, `${reg.host}/shoal/foreign:v1`, 'ERR_IMAGE_NO_MATCHING_PLATFORM', new RegExp(`no image for linux/${HOST_ARCH}.* in the manifest list \\(it offers linux/${other}\\)`));
  });

  it('keeps only complete, verified layers when a later layer of the image fails', async () => {
    const good = buildTar([{ type: 'file', path: 'good', content: 'g' }]);
    const pushed = await pushImage(reg, { repository: 'shoal/half', tag: 'v1', layers: [good, await uniqueBusybox('half')] });
    await reg.corruptBlob(pushed.layerDigests[1] as string);
    const store = await cleanup.store({ concurrentDownloads: 1 });
    const before = await listTree(store.root);
    await expect(store.pull(`${reg.host}/shoal/half:v1`)).rejects.toMatchObject({ code: 'ERR_IMAGE_DIGEST_MISMATCH' });
    const added = (await listTree(store.root)).filter((p) => !before.includes(p));
    const goodHex = (pushed.diffIds[0] as string).slice(7);
    expect(added.every((p) => p.startsWith(`layers/sha256/${goodHex}`) || p === `l/${goodHex.slice(0, 16)}`)).toBe(true);
    expect(added).toContain(`layers/sha256/${goodHex}/layer.json`);
    expect(await listTree(join(store.root, 'tmp'))).toEqual([]);
    expect(store.list()).toEqual([]);
  });

  it('concurrent pulls of a corrupt image all fail, after one download', async () => {
    const pushed = await pushImage(reg, { repository: 'shoal/corrupt-conc', tag: 'v1', layers: [await uniqueBusybox('corrupt-conc')] });
    await reg.corruptBlob(pushed.layerDigests[0] as string);
    const store = await cleanup.store();
    const results = await Promise.allSettled([1, 2, 3].map(() => store.pull(`${reg.host}/shoal/corrupt-conc:v1`)));
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as ImagePullError).code : 'ok'))).toEqual(Array(3).fill('ERR_IMAGE_DIGEST_MISMATCH'));
    expect(reg.blobGets(pushed.layerDigests[0] as string)).toBe(1);
    expect(await listTree(join(store.root, 'layers'))).toEqual(['sha256']);
  });
});
