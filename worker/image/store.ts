// The image store: pulls images into a content-addressed layer cache and mounts container roots.
// Layout and pull sequence: README.md in this folder.
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile, readlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { decodeRegistryAuth, RegistryAuthHeaderError, type RegistryCredentials } from './auth.js';
import { digestHex, isSha256Digest } from './digest.js';
import { ImagePullError, ImageStoreError, InvalidReferenceError, LayerFormatError, type ImagePullErrorCode } from './errors.js';
import { parseImageConfig, type ImageConfig, type ParsedImageConfig } from './image-config.js';
import { LocalUnpackError, unpackLayerResponse } from './layer-download.js';
import { layerCompression, parseManifest, type Descriptor, type Manifest } from './manifest.js';
import { mountOverlayWith, overlayOptions, unmount } from './overlay-mount.js';
import { choosePlatform, formatPlatform, hostPlatform, type Platform } from './platform.js';
import { canonicalReference, DOCKER_HUB_DOMAIN, familiarReference, parseReference, repositoryName, type ImageReference } from './reference.js';
import { RegistryClient, RegistryRequestError, type Endpoint } from './registry-client.js';

const DOCKER_HUB_ENDPOINT = 'https://registry-1.docker.io';
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_BLOB_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_BLOB_ATTEMPTS = 3;
const BLOB_RETRY_DELAY_MS = 200;
/** Layers of one image downloaded at once (Docker's max-concurrent-downloads default). */
const DEFAULT_CONCURRENT_DOWNLOADS = 3;
/** Short names for layer directories in l/, so long lowerdir lists fit in one page. */
const LAYER_LINK_HEX_CHARS = 16;
const USER_AGENT = 'shoal/0.1';

export interface ImageStoreOptions {
  /** State directory, e.g. /var/lib/shoal/image. Must be on a file system overlayfs accepts as lower. */
  readonly root: string;
  /**
   * Registries reached over plain HTTP (`host:port` or host). Loopback hosts are always plain
   * HTTP, as Docker treats 127.0.0.0/8 as insecure by default.
   */
  readonly insecureRegistries?: readonly string[];
  /** Mirrors for docker.io, tried in order before Docker Hub: `http://10.0.0.5:5000`. */
  readonly registryMirrors?: readonly string[];
  /** Whether to fall back to Docker Hub itself when every mirror fails (default true). */
  readonly dockerHubFallback?: boolean;
  readonly platform?: Platform;
  readonly logger?: Logger;
  readonly requestTimeoutMs?: number;
  readonly blobIdleTimeoutMs?: number;
  readonly blobAttempts?: number;
  readonly concurrentDownloads?: number;
}

export interface PullOptions {
  /** Docker's `X-Registry-Auth` header value (base64url JSON `{username, password, serveraddress}`). */
  readonly registryAuth?: string;
  readonly credentials?: RegistryCredentials;
  readonly signal?: AbortSignal;
}

export interface ImageRecord {
  /** The config digest, as Docker's image ID. */
  readonly id: string;
  /** Canonical references this image was pulled as: `docker.io/library/busybox:latest`. */
  readonly references: readonly string[];
  /** `docker.io/library/busybox@sha256:<manifest digest>`. */
  readonly repoDigests: readonly string[];
  readonly os: string;
  readonly architecture: string;
  readonly variant: string | undefined;
  /** Uncompressed layer digests, bottom first. */
  readonly diffIds: readonly string[];
  readonly config: ImageConfig;
  /** Unpacked file bytes of all layers. */
  readonly sizeBytes: number;
  readonly pulledAtMs: number;
}

export interface PullResult {
  readonly image: ImageRecord;
  /** Layers fetched by this call (0 when everything was cached or shared with another pull). */
  readonly downloadedLayers: number;
  readonly downloadedBytes: number;
}

export interface RootfsMount {
  readonly rootfs: string;
  readonly upperDir: string;
  /** Unmounts the root; idempotent. The container directory itself is the caller's. */
  unmount(): Promise<void>;
}

export interface RootfsPlan extends RootfsMount {
  /** How to mount it: `mount -t overlay overlay -o <options> <rootfs>`, run in `cwd`. */
  readonly overlay: { readonly cwd: string; readonly options: string };
  /** Releases the mount count without unmounting (the mount was never made). */
  release(): void;
}

export interface GcOptions {
  /** Also keep images pulled or last unmounted less than this long ago (a task of the same service may come back). */
  readonly keepUsedWithinMs?: number;
}

export interface GcResult {
  readonly removedImages: readonly string[];
  readonly removedLayers: readonly string[];
}

interface LayerRecord {
  readonly diffId: string;
  readonly compressedDigest: string;
  readonly compressedBytes: number;
  readonly fileBytes: number;
  readonly entries: number;
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

function hostOf(domain: string): string {
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(domain);
  return m?.[1] ?? domain;
}

function pullCode(kind: RegistryRequestError['kind']): ImagePullErrorCode {
  switch (kind) {
    case 'unreachable':
      return 'ERR_IMAGE_REGISTRY_UNREACHABLE';
    case 'unauthorized':
      return 'ERR_IMAGE_UNAUTHORIZED';
    case 'not-found':
      return 'ERR_IMAGE_NOT_FOUND';
    case 'http':
      return 'ERR_IMAGE_REGISTRY';
    case 'bad-response':
      return 'ERR_IMAGE_BAD_MANIFEST';
    case 'digest-mismatch':
      return 'ERR_IMAGE_DIGEST_MISMATCH';
    case 'truncated':
      return 'ERR_IMAGE_BLOB_TRUNCATED';
  }
}

function isTransient(err: unknown): boolean {
  if (!(err instanceof RegistryRequestError)) return false;
  return err.kind === 'unreachable' || err.kind === 'truncated' || (err.kind === 'http' && (err.status ?? 0) >= 500);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function writeFileAtomic(tmpDir: string, path: string, data: string): Promise<void> {
  const dir = await mkdtemp(join(tmpDir, 'write-'));
  try {
    await writeFile(join(dir, 'f'), data, { mode: 0o600 });
    await rename(join(dir, 'f'), path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs fn over items with at most `limit` at once; rejects with the first failure after all settle. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (next < items.length && errors.length === 0) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) throw errors[0];
}

/**
 * Short layer names (l/<16 hex>) used as lower dirs by overlay mounts on this machine. Mounts
 * are made with those names relative to l/, so the kernel shows them as given. A mount of
 * another store holding the same layer also counts: that only makes gc keep more.
 */
async function mountedLayerNames(): Promise<Set<string>> {
  const names = new Set<string>();
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of table.split('\n')) {
    const [, after] = line.split(' - ');
    if (after === undefined || !after.startsWith('overlay ')) continue;
    const lower = /(?:^|,)lowerdir=([^,]*)/.exec(after.split(' ')[2] ?? '')?.[1];
    for (const dir of lower?.split(':') ?? []) {
      const name = dir.slice(dir.lastIndexOf('/') + 1);
      if (new RegExp(`^[0-9a-f]{${LAYER_LINK_HEX_CHARS}}$`).test(name)) names.add(name);
    }
  }
  return names;
}

export class ImageStore {
  private readonly log: Logger;
  private readonly images = new Map<string, ImageRecord>();
  private readonly layers = new Set<string>();
  /** Layer downloads under way, keyed by diff ID: concurrent pulls share one. */
  private readonly inflight = new Map<string, Promise<number>>();
  /** Layers that a pull in progress will reference; gc leaves them alone. */
  private readonly pinnedLayers = new Map<string, number>();
  /** Mounted roots per image ID. */
  private readonly mounts = new Map<string, number>();
  /** When an image's last root was unmounted (this process). */
  private readonly lastUnmountedMs = new Map<string, number>();
  /** Settles when the running gc (if any) is done; layer commits and mounts wait for it. */
  private gcDone: Promise<void> = Promise.resolve();
  private readonly platform: Platform;

  private constructor(private readonly opts: ImageStoreOptions) {
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'image-store' });
    this.platform = opts.platform ?? hostPlatform();
  }

  /** The state directory this store owns. */
  get root(): string {
    return this.opts.root;
  }

  private get layersDir(): string {
    return join(this.opts.root, 'layers', 'sha256');
  }
  private get linksDir(): string {
    return join(this.opts.root, 'l');
  }
  private get imagesDir(): string {
    return join(this.opts.root, 'images', 'sha256');
  }
  private get tmpDir(): string {
    return join(this.opts.root, 'tmp');
  }
  private layerDir(diffId: string): string {
    return join(this.layersDir, digestHex(diffId));
  }
  private layerLinkName(diffId: string): string {
    return digestHex(diffId).slice(0, LAYER_LINK_HEX_CHARS);
  }

  /** Opens (creating if needed) the store at opts.root and drops what an interrupted run left in tmp/. */
  static async open(opts: ImageStoreOptions): Promise<ImageStore> {
    const store = new ImageStore(opts);
    await store.load();
    return store;
  }

  private async load(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
    for (const d of [this.layersDir, this.imagesDir, this.linksDir, this.tmpDir]) await mkdir(d, { recursive: true, mode: 0o700 });
    for (const hex of await readdir(this.layersDir)) {
      const diffId = `sha256:${hex}`;
      if (!isSha256Digest(diffId) || !(await exists(join(this.layersDir, hex, 'layer.json')))) continue;
      this.layers.add(diffId);
      await this.ensureLink(diffId);
    }
    for (const name of await readdir(this.imagesDir)) {
      if (!name.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(await readFile(join(this.imagesDir, name), 'utf8')) as ImageRecord;
        if (rec.diffIds.every((d) => this.layers.has(d))) this.images.set(rec.id, rec);
        else this.log.warn({ image: rec.id }, 'image record names missing layers; ignored');
      } catch (err) {
        this.log.warn({ file: name, err }, 'unreadable image record; ignored');
      }
    }
    this.log.info({ images: this.images.size, layers: this.layers.size }, 'image store opened');
  }

  private async ensureLink(diffId: string): Promise<void> {
    const link = join(this.linksDir, this.layerLinkName(diffId));
    const target = join('..', 'layers', 'sha256', digestHex(diffId), 'fs');
    const current = await readlink(link).catch(() => undefined);
    if (current === target) return;
    if (current !== undefined) throw new ImageStoreError('ERR_IMAGE_STORE', `layer link ${link} points at ${current}, expected ${target}`);
    await symlink(target, link);
  }

  /** Images in the store. */
  list(): readonly ImageRecord[] {
    return [...this.images.values()];
  }

  /** Finds an image by ID (`sha256:…`) or by a reference it was pulled as (`busybox`, `host:5000/x:1`). */
  get(idOrReference: string): ImageRecord | undefined {
    const byId = this.images.get(idOrReference);
    if (byId !== undefined) return byId;
    let ref: ImageReference;
    try {
      ref = parseReference(idOrReference);
    } catch {
      return undefined;
    }
    const canonical = canonicalReference(ref);
    for (const img of this.images.values()) {
      if (img.references.includes(canonical)) return img;
      if (ref.digest !== undefined && img.repoDigests.includes(`${repositoryName(ref)}@${ref.digest}`)) return img;
    }
    return undefined;
  }

  private endpointsFor(ref: ImageReference): Endpoint[] {
    if (ref.domain === DOCKER_HUB_DOMAIN) {
      const mirrors = (this.opts.registryMirrors ?? []).map((m) => ({ baseUrl: m.replace(/\/+$/, ''), mirror: true }));
      const hub = this.opts.dockerHubFallback === false ? [] : [{ baseUrl: DOCKER_HUB_ENDPOINT, mirror: false }];
      return [...mirrors, ...hub];
    }
    const insecure = isLoopbackHost(hostOf(ref.domain)) || (this.opts.insecureRegistries ?? []).some((r) => r === ref.domain || r === hostOf(ref.domain));
    return [{ baseUrl: `${insecure ? 'http' : 'https'}://${ref.domain}`, mirror: false }];
  }

  /**
   * Pulls `reference` and returns the image. Every failure is an ImagePullError naming the image
   * as given; the layer cache then holds nothing from the failed layer.
   */
  async pull(reference: string, options: PullOptions = {}): Promise<PullResult> {
    const image = reference;
    const fail = (code: ImagePullErrorCode, text: string, cause?: unknown): ImagePullError => new ImagePullError(code, image, text, { cause });
    let ref: ImageReference;
    let credentials: RegistryCredentials | undefined;
    try {
      ref = parseReference(reference);
      credentials = options.credentials ?? decodeRegistryAuth(options.registryAuth);
    } catch (err) {
      if (err instanceof InvalidReferenceError) throw fail('ERR_IMAGE_INVALID_REFERENCE', err.message, err);
      if (err instanceof RegistryAuthHeaderError) throw fail('ERR_IMAGE_BAD_CREDENTIALS', err.message, err);
      throw err;
    }
    const log = this.log.child({ image: familiarReference(ref) });
    const endpoints = this.endpointsFor(ref);
    if (endpoints.length === 0) throw fail('ERR_IMAGE_REGISTRY_UNREACHABLE', 'no registry endpoint: Docker Hub fallback is off and no mirror is configured');
    let lastError: unknown;
    for (const endpoint of endpoints) {
      const client = new RegistryClient({
        endpoint,
        repository: ref.path,
        credentials,
        logger: log,
        requestTimeoutMs: this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        userAgent: USER_AGENT,
        signal: options.signal,
      });
      try {
        return await this.pullFrom(client, ref, log);
      } catch (err) {
        lastError = err;
        if (options.signal?.aborted === true) throw fail('ERR_IMAGE_ABORTED', 'pull aborted', err);
        // A mirror that fails is skipped, as Docker does; the last endpoint's error is the answer.
        if (endpoint.mirror) log.warn({ mirror: endpoint.baseUrl, err: (err as Error).message }, 'mirror failed; trying next endpoint');
        else break;
      }
    }
    throw this.toPullError(lastError, image);
  }

  private toPullError(err: unknown, image: string): ImagePullError {
    if (err instanceof ImagePullError) return err;
    if (err instanceof RegistryRequestError) {
      const text = err.kind === 'not-found' ? `not found: ${err.message}` : err.message;
      return new ImagePullError(pullCode(err.kind), image, text, { cause: err });
    }
    if (err instanceof LayerFormatError) return new ImagePullError('ERR_IMAGE_BAD_LAYER', image, err.message, { cause: err });
    if (err instanceof LocalUnpackError) return new ImagePullError('ERR_IMAGE_LOCAL', image, err.message, { cause: err });
    return new ImagePullError('ERR_IMAGE_LOCAL', image, (err as Error).message ?? String(err), { cause: err });
  }

  /** Resolves the reference to one image manifest for our platform. */
  private async resolveManifest(client: RegistryClient, ref: ImageReference): Promise<{ manifest: Manifest & { kind: 'image' }; digest: string }> {
    const top = await client.getManifest(ref.digest ?? ref.tag ?? 'latest');
    let manifest = this.parse(top.body, top.contentType);
    let digest = top.digest;
    if (manifest.kind === 'index') {
      const chosen = choosePlatform(manifest.manifests, this.platform);
      if (chosen === undefined) {
        const offered = manifest.manifests.map((m) => (m.platform !== undefined ? formatPlatform(m.platform) : 'unknown')).join(', ');
        throw new ImagePullError('ERR_IMAGE_NO_MATCHING_PLATFORM', ref.original, `no image for ${formatPlatform(this.platform)} in the manifest list (it offers ${offered || 'nothing'})`);
      }
      const child = await client.getManifest(chosen.digest);
      manifest = this.parse(child.body, child.contentType);
      digest = child.digest;
      if (manifest.kind !== 'image') throw new RegistryRequestError('bad-response', `manifest ${chosen.digest}: an index inside an index is not supported`);
    }
    return { manifest, digest: ref.digest ?? digest };
  }

  private parse(body: Buffer, contentType: string | undefined): Manifest {
    try {
      return parseManifest(body, contentType);
    } catch (err) {
      throw new RegistryRequestError('bad-response', `bad manifest: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  private async pullFrom(client: RegistryClient, ref: ImageReference, log: Logger): Promise<PullResult> {
    const { manifest, digest: manifestDigest } = await this.resolveManifest(client, ref);
    const imageId = manifest.config.digest;
    const existing = this.images.get(imageId);
    let parsed: ParsedImageConfig | undefined;
    let diffIds: readonly string[];
    if (existing !== undefined && existing.diffIds.every((d) => this.layers.has(d))) {
      diffIds = existing.diffIds;
    } else {
      const raw = await client.getSmallBlob(manifest.config.digest, manifest.config.size);
      try {
        parsed = parseImageConfig(raw);
      } catch (err) {
        throw new RegistryRequestError('bad-response', `image config ${imageId}: ${(err as Error).message}`, undefined, { cause: err });
      }
      diffIds = parsed.diffIds;
      if (parsed.os !== '' && parsed.os !== this.platform.os) {
        throw new ImagePullError('ERR_IMAGE_NO_MATCHING_PLATFORM', ref.original, `image is for ${parsed.os}/${parsed.architecture}, this worker runs ${formatPlatform(this.platform)}`);
      }
      if (parsed.architecture !== '' && parsed.architecture !== this.platform.architecture) {
        log.warn({ imageArch: parsed.architecture, hostArch: this.platform.architecture }, 'image architecture differs from this worker');
      }
    }
    if (diffIds.length !== manifest.layers.length) {
      throw new RegistryRequestError('bad-response', `manifest lists ${manifest.layers.length} layers but the image config ${imageId} lists ${diffIds.length}`);
    }
    for (const layer of manifest.layers) {
      if (layerCompression(layer.mediaType) === undefined) {
        throw new ImagePullError('ERR_IMAGE_UNSUPPORTED', ref.original, `layer ${layer.digest} has media type ${layer.mediaType}, which this worker cannot unpack (gzip and plain tar only)`);
      }
    }

    for (const d of diffIds) this.pinnedLayers.set(d, (this.pinnedLayers.get(d) ?? 0) + 1);
    try {
      let downloadedLayers = 0;
      let downloadedBytes = 0;
      const indices = diffIds.map((_, i) => i);
      await forEachLimited(indices, this.opts.concurrentDownloads ?? DEFAULT_CONCURRENT_DOWNLOADS, async (i) => {
        const bytes = await this.ensureLayer(client, manifest.layers[i] as Descriptor, diffIds[i] as string, log);
        if (bytes > 0) {
          downloadedLayers++;
          downloadedBytes += bytes;
        }
      });
      const image = await this.recordImage(ref, imageId, manifestDigest, diffIds, parsed, existing);
      log.info({ id: imageId, layers: diffIds.length, downloadedLayers, downloadedBytes }, 'image pulled');
      return { image, downloadedLayers, downloadedBytes };
    } finally {
      for (const d of diffIds) {
        const n = (this.pinnedLayers.get(d) ?? 1) - 1;
        if (n <= 0) this.pinnedLayers.delete(d);
        else this.pinnedLayers.set(d, n);
      }
    }
  }

  private async recordImage(
    ref: ImageReference,
    imageId: string,
    manifestDigest: string,
    diffIds: readonly string[],
    parsed: ParsedImageConfig | undefined,
    existing: ImageRecord | undefined,
  ): Promise<ImageRecord> {
    const canonical = ref.tag !== undefined ? canonicalReference({ ...ref, digest: undefined }) : undefined;
    const repoDigest = `${repositoryName(ref)}@${manifestDigest}`;
    // A tag moves to the new image, as in Docker; the old image keeps its ID and repo digests.
    if (canonical !== undefined) {
      for (const other of this.images.values()) {
        if (other.id !== imageId && other.references.includes(canonical)) {
          await this.saveImage({ ...other, references: other.references.filter((r) => r !== canonical) });
        }
      }
    }
    const current = this.images.get(imageId) ?? existing;
    let fileBytes = 0;
    for (const d of diffIds) fileBytes += (await this.readLayerRecord(d))?.fileBytes ?? 0;
    const base: ImageRecord =
      current ??
      (() => {
        if (parsed === undefined) throw new ImageStoreError('ERR_IMAGE_STORE', `image ${imageId} has no config`);
        return {
          id: imageId,
          references: [],
          repoDigests: [],
          os: parsed.os,
          architecture: parsed.architecture,
          variant: parsed.variant,
          diffIds,
          config: parsed.config,
          sizeBytes: fileBytes,
          pulledAtMs: Date.now(),
        };
      })();
    const rec: ImageRecord = {
      ...base,
      references: canonical !== undefined && !base.references.includes(canonical) ? [...base.references, canonical] : base.references,
      repoDigests: base.repoDigests.includes(repoDigest) ? base.repoDigests : [...base.repoDigests, repoDigest],
      pulledAtMs: Date.now(),
    };
    await this.saveImage(rec);
    return rec;
  }

  private async saveImage(rec: ImageRecord): Promise<void> {
    await writeFileAtomic(this.tmpDir, join(this.imagesDir, `${digestHex(rec.id)}.json`), JSON.stringify(rec));
    this.images.set(rec.id, rec);
  }

  private async readLayerRecord(diffId: string): Promise<LayerRecord | undefined> {
    try {
      return JSON.parse(await readFile(join(this.layerDir(diffId), 'layer.json'), 'utf8')) as LayerRecord;
    } catch {
      return undefined;
    }
  }

  /** Makes sure the layer is in the cache; returns the compressed bytes this call downloaded. */
  private async ensureLayer(client: RegistryClient, desc: Descriptor, diffId: string, log: Logger): Promise<number> {
    if (this.layers.has(diffId)) return 0;
    const running = this.inflight.get(diffId);
    if (running !== undefined) {
      await running;
      return 0;
    }
    const download = this.downloadLayer(client, desc, diffId, log);
    this.inflight.set(diffId, download);
    try {
      return await download;
    } finally {
      this.inflight.delete(diffId);
    }
  }

  private async downloadLayer(client: RegistryClient, desc: Descriptor, diffId: string, log: Logger): Promise<number> {
    const attempts = Math.max(1, this.opts.blobAttempts ?? DEFAULT_BLOB_ATTEMPTS);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.downloadLayerOnce(client, desc, diffId, log);
      } catch (err) {
        if (!isTransient(err) || attempt >= attempts) throw err;
        log.warn({ layer: desc.digest, attempt, err: (err as Error).message }, 'layer download failed; retrying');
        await new Promise((r) => setTimeout(r, BLOB_RETRY_DELAY_MS * attempt));
      }
    }
  }

  private async downloadLayerOnce(client: RegistryClient, desc: Descriptor, diffId: string, log: Logger): Promise<number> {
    const compression = layerCompression(desc.mediaType) ?? 'gzip';
    // Everything goes into a staging dir under tmp/ and is renamed into place only once verified.
    const staging = await mkdtemp(join(this.tmpDir, 'layer-'));
    try {
      const fsDir = join(staging, 'fs');
      await mkdir(fsDir, { mode: 0o755 });
      const startedMs = Date.now();
      const res = await client.getBlob(desc.digest);
      const result = await unpackLayerResponse(res, desc, compression, diffId, fsDir, this.opts.blobIdleTimeoutMs ?? DEFAULT_BLOB_IDLE_TIMEOUT_MS);
      const record: LayerRecord = {
        diffId,
        compressedDigest: desc.digest,
        compressedBytes: result.compressedBytes,
        fileBytes: result.stats.fileBytes,
        entries: result.stats.entries,
      };
      await writeFile(join(staging, 'layer.json'), JSON.stringify(record), { mode: 0o600 });
      await this.gcDone; // never commit a layer while gc may be moving the same address away
      try {
        await rename(staging, this.layerDir(diffId));
      } catch (err) {
        // Another process put the same layer in place first: theirs is as good as ours.
        if (!(await exists(join(this.layerDir(diffId), 'layer.json')))) throw err;
      }
      await this.ensureLink(diffId);
      this.layers.add(diffId);
      log.debug({ layer: desc.digest, diffId, bytes: result.compressedBytes, entries: result.stats.entries, ms: Date.now() - startedMs }, 'layer unpacked');
      return result.compressedBytes;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /**
   * Mounts the image's root for a container: overlayfs with the image's layers as lower dirs
   * (top first) and `containerDir/upper` + `containerDir/work`, on `containerDir/rootfs`.
   */
  async mountRootfs(imageId: string, containerDir: string): Promise<RootfsMount> {
    const plan = await this.planRootfs(imageId, containerDir);
    try {
      await mountOverlayWith(plan.overlay.options, plan.rootfs, plan.overlay.cwd);
    } catch (err) {
      plan.release();
      throw err;
    }
    return plan;
  }

  /**
   * Everything of mountRootfs but the mount itself: the directories are made, the image counts as
   * mounted (gc keeps it) from now on, and `overlay` says how to mount it — for a caller that runs
   * `mount` in a process of its own (the executor's shim). `unmount()` unmounts if mounted and
   * releases the count; `release()` only releases it (the mount was never made).
   */
  async planRootfs(imageId: string, containerDir: string): Promise<RootfsPlan> {
    await this.gcDone;
    const image = this.get(imageId);
    if (image === undefined) throw new ImageStoreError('ERR_IMAGE_NOT_PRESENT', `image ${imageId} is not in the store; pull it first`);
    const missing = image.diffIds.filter((d) => !this.layers.has(d));
    if (missing.length > 0) throw new ImageStoreError('ERR_IMAGE_NOT_PRESENT', `image ${imageId} is missing layers ${missing.join(', ')}; pull it again`);
    const rootfs = join(containerDir, 'rootfs');
    const upperDir = join(containerDir, 'upper');
    const workDir = join(containerDir, 'work');
    // Counted before the first await, so a gc starting meanwhile keeps this image.
    this.mounts.set(image.id, (this.mounts.get(image.id) ?? 0) + 1);
    let options: string;
    try {
      for (const d of [rootfs, upperDir, workDir]) await mkdir(d, { recursive: true, mode: 0o755 });
      let lowerDirs = [...image.diffIds].reverse().map((d) => this.layerLinkName(d));
      if (lowerDirs.length === 0) {
        // An image without layers still needs one lower dir.
        const empty = join(containerDir, 'empty');
        await mkdir(empty, { recursive: true });
        lowerDirs = [empty];
      }
      options = overlayOptions({ lowerDirs, upperDir, workDir });
    } catch (err) {
      this.releaseMount(image.id);
      throw err;
    }
    return { ...this.mountHandle(image.id, rootfs, upperDir), overlay: { cwd: this.linksDir, options } };
  }

  /**
   * Takes over a root an earlier process mounted with mountRootfs/planRootfs (a daemon restarted
   * under running containers): the image counts as mounted again, so gc keeps it and its layers
   * until the returned handle unmounts it.
   */
  adoptRootfs(imageId: string, containerDir: string): RootfsMount {
    const id = this.get(imageId)?.id ?? imageId;
    this.mounts.set(id, (this.mounts.get(id) ?? 0) + 1);
    return this.mountHandle(id, join(containerDir, 'rootfs'), join(containerDir, 'upper'));
  }

  /** Image IDs with roots mounted through this store (made or adopted), with their counts. */
  mountedImages(): ReadonlyMap<string, number> {
    return new Map(this.mounts);
  }

  private mountHandle(imageId: string, rootfs: string, upperDir: string): RootfsMount & { release(): void } {
    let counted = true;
    const release = (): void => {
      if (!counted) return;
      counted = false;
      this.releaseMount(imageId);
    };
    return {
      rootfs,
      upperDir,
      unmount: async () => {
        if (!counted) return;
        await unmount(rootfs);
        release();
      },
      release,
    };
  }

  private releaseMount(id: string): void {
    const n = (this.mounts.get(id) ?? 1) - 1;
    this.lastUnmountedMs.set(id, Date.now());
    if (n <= 0) this.mounts.delete(id);
    else this.mounts.set(id, n);
  }

  /**
   * Removes images that are neither in `inUse` (IDs or references the caller's tasks need) nor
   * mounted (through this store, adopted with adoptRootfs, or found in the mount table) nor used
   * within `keepUsedWithinMs`, then layers no remaining image references. Layers that a pull in
   * progress is fetching or will reference are kept.
   */
  async gc(inUse: Iterable<string>, options: GcOptions = {}): Promise<GcResult> {
    const previous = this.gcDone;
    let release = (): void => undefined;
    this.gcDone = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await previous;
      return await this.collect(inUse, options);
    } finally {
      release();
    }
  }

  private async collect(inUse: Iterable<string>, options: GcOptions): Promise<GcResult> {
    const keep = new Set<string>();
    const recentMs = options.keepUsedWithinMs ?? 0;
    if (recentMs > 0) {
      const since = Date.now() - recentMs;
      for (const img of this.images.values()) {
        if (img.pulledAtMs >= since || (this.lastUnmountedMs.get(img.id) ?? 0) >= since) keep.add(img.id);
      }
    }
    for (const key of inUse) {
      const img = this.get(key);
      if (img !== undefined) keep.add(img.id);
    }
    for (const id of this.mounts.keys()) keep.add(id);
    // Mounts this process did not make (a daemon restarted under running containers) are found
    // in the mount table by their short layer names; they protect their layers and images.
    const mountedNames = await mountedLayerNames();
    const isMounted = (diffId: string): boolean => mountedNames.has(this.layerLinkName(diffId));
    const removedImages: string[] = [];
    for (const img of [...this.images.values()]) {
      if (keep.has(img.id) || (img.diffIds.length > 0 && img.diffIds.every(isMounted))) continue;
      await rm(join(this.imagesDir, `${digestHex(img.id)}.json`), { force: true });
      this.images.delete(img.id);
      this.lastUnmountedMs.delete(img.id);
      removedImages.push(img.id);
    }
    const referenced = new Set<string>();
    for (const img of this.images.values()) for (const d of img.diffIds) referenced.add(d);
    const removedLayers: string[] = [];
    for (const diffId of [...this.layers]) {
      if (referenced.has(diffId) || this.pinnedLayers.has(diffId) || this.inflight.has(diffId) || isMounted(diffId)) continue;
      this.layers.delete(diffId);
      // Rename first so the layer disappears from its content address at once.
      const doomed = await mkdtemp(join(this.tmpDir, 'gc-'));
      await rm(join(this.linksDir, this.layerLinkName(diffId)), { force: true });
      await rename(this.layerDir(diffId), join(doomed, 'layer'));
      await rm(doomed, { recursive: true, force: true });
      removedLayers.push(diffId);
    }
    if (removedImages.length + removedLayers.length > 0) this.log.info({ removedImages: removedImages.length, removedLayers: removedLayers.length }, 'image gc');
    return { removedImages, removedLayers };
  }
}
