// Manifest media types and validation of the manifests we accept.
import { isSha256Digest } from './digest.js';
import type { Platform } from './platform.js';

export const MEDIA = {
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociNondistLayer: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociNondistLayerGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
} as const;

/** What we send in Accept when asking for a manifest by tag or digest. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform | undefined;
}

export type Manifest =
  | { readonly kind: 'index'; readonly mediaType: string; readonly manifests: readonly Descriptor[] }
  | { readonly kind: 'image'; readonly mediaType: string; readonly config: Descriptor; readonly layers: readonly Descriptor[] };

export type LayerCompression = 'gzip' | 'none';

/** How a layer of this media type is compressed; undefined when we cannot read it. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  switch (mediaType) {
    case MEDIA.dockerLayerGzip:
    case MEDIA.dockerForeignLayerGzip:
    case MEDIA.ociLayerGzip:
    case MEDIA.ociNondistLayerGzip:
      return 'gzip';
    case MEDIA.ociLayer:
    case MEDIA.ociNondistLayer:
      return 'none';
    default:
      return undefined;
  }
}

function descriptor(v: unknown, what: string): Descriptor {
  const d = v as Record<string, unknown> | null;
  if (typeof d !== 'object' || d === null) throw new Error(`${what} is not an object`);
  if (typeof d.mediaType !== 'string') throw new Error(`${what} has no mediaType`);
  if (!isSha256Digest(d.digest)) throw new Error(`${what} has digest ${JSON.stringify(d.digest)}, not a sha256 digest`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw new Error(`${what} has a bad size`);
  let platform: Platform | undefined;
  const p = d.platform as Record<string, unknown> | undefined;
  if (p !== undefined && p !== null) {
    if (typeof p.os !== 'string' || typeof p.architecture !== 'string') throw new Error(`${what} has a bad platform`);
    platform = { os: p.os, architecture: p.architecture, variant: typeof p.variant === 'string' ? p.variant : undefined };
  }
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, platform };
}

/**
 * Parses a manifest body. The media type comes from the body when it says, else from the
 * response's Content-Type. Docker schema 1 is refused (deprecated, unsigned content).
 */
export function parseManifest(body: Buffer, contentType: string | undefined): Manifest {
  const doc = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null) throw new Error('manifest is not a JSON object');
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : (contentType?.split(';')[0]?.trim() ?? '');
  if (doc.schemaVersion === 1) throw new Error('Docker schema 1 manifests are not supported; push the image with a newer client');
  if (doc.schemaVersion !== 2) throw new Error(`unsupported manifest schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  if (mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList || (mediaType === '' && Array.isArray(doc.manifests))) {
    if (!Array.isArray(doc.manifests)) throw new Error('index has no manifests list');
    return { kind: 'index', mediaType, manifests: doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`)) };
  }
  if (mediaType === MEDIA.ociManifest || mediaType === MEDIA.dockerManifest || (mediaType === '' && doc.config !== undefined)) {
    if (!Array.isArray(doc.layers)) throw new Error('manifest has no layers list');
    const config = descriptor(doc.config, 'config');
    const layers = doc.layers.map((l, i) => descriptor(l, `layers[${i}]`));
    return { kind: 'image', mediaType, config, layers };
  }
  throw new Error(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
}
