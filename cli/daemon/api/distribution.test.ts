// GET /distribution/{image}/json against a real registry (Debian's docker-registry on loopback):
// the digest the registry serves, the platforms of an index or of a single image's config, Docker
// Hub names through a mirror, and a 404 for what the registry does not have.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTar, HOST_ARCH, pushImage, pushIndex, startRegistry, type RegistryFixture } from '../../../worker/testing/registry.js';
import { ApiError } from './errors.js';
import { endpointsFor, inspectDistribution } from './distribution.js';

const logger = pino({ level: 'silent' });
let reg: RegistryFixture;

beforeAll(async () => {
  reg = await startRegistry();
}, 30_000);

afterAll(async () => {
  await reg?.stop();
});

describe('distribution inspect', () => {
  it('answers the digest and platform of a single image, and of an index', async () => {
    const layer = buildTar([{ type: 'file', path: 'hello', content: 'hi' }]);
    const one = await pushImage(reg, { repository: 'shoal/dist', tag: 'v1', layers: [layer], format: 'docker' });
    const got = await inspectDistribution(`${reg.host}/shoal/dist:v1`, undefined, { registryMirrors: [], insecureRegistries: [], logger });
    expect(got).toEqual({
      Descriptor: { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: one.manifestDigest, size: one.manifestSize },
      Platforms: [{ architecture: HOST_ARCH, os: 'linux' }],
    });

    const arm = await pushImage(reg, { repository: 'shoal/dist', layers: [layer], architecture: 'arm64', format: 'oci' });
    const index = await pushIndex(reg, 'shoal/dist', 'multi', [
      { image: one, platform: { os: 'linux', architecture: HOST_ARCH } },
      { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    const multi = await inspectDistribution(`${reg.host}/shoal/dist:multi`, undefined, { registryMirrors: [], insecureRegistries: [], logger });
    expect(multi.Descriptor).toMatchObject({ mediaType: 'application/vnd.oci.image.index.v1+json', digest: index });
    expect(multi.Platforms).toEqual([
      { architecture: HOST_ARCH, os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ]);
  });

  it('asks the mirror for Docker Hub names, and says 404 for an unknown tag', async () => {
    const pushed = await pushImage(reg, { repository: 'library/busybox', tag: 'latest', layers: [buildTar([{ type: 'file', path: 'a', content: 'b' }])], format: 'docker' });
    const opts = { registryMirrors: [`http://${reg.host}/`], insecureRegistries: [], logger, dockerHubFallback: false };
    expect((await inspectDistribution('busybox:latest', undefined, opts)).Descriptor.digest).toBe(pushed.manifestDigest);
    expect((await inspectDistribution('docker.io/library/busybox', undefined, opts)).Descriptor.digest).toBe(pushed.manifestDigest);
    const missing = await inspectDistribution('busybox:nope', undefined, opts).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ApiError);
    expect((missing as ApiError).status).toBe(404);
    const bad = await inspectDistribution('bad name!', undefined, opts).catch((e: unknown) => e);
    expect((bad as ApiError).status).toBe(400);
  });

  it('uses HTTP for loopback and --insecure-registry hosts, HTTPS otherwise', () => {
    const o = { registryMirrors: ['http://10.0.0.1:5000'], insecureRegistries: ['reg.lan:5000'] };
    expect(endpointsFor('docker.io', o).map((e) => e.baseUrl)).toEqual(['http://10.0.0.1:5000', 'https://registry-1.docker.io']);
    expect(endpointsFor('reg.lan:5000', o)[0]!.baseUrl).toBe('http://reg.lan:5000');
    expect(endpointsFor('127.0.0.1:5000', o)[0]!.baseUrl).toBe('http://127.0.0.1:5000');
    expect(endpointsFor('ghcr.io', o)[0]!.baseUrl).toBe('https://ghcr.io');
  });
});
