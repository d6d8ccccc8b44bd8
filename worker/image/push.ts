// Builds small images in code (layers are tar archives written here, e.g. from Debian's
// `busybox-static`) and pushes them through a registry's HTTP API: the lab's seed image and the
// tests' images. Not a general image builder.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

const BUSYBOX_PATH = '/bin/busybox';

/** Where pushes go: the registry's address and, when auth is on, the header for a repository. */
export interface PushTarget {
  readonly directHost: string;
  pushAuthorization(repository: string): string | undefined;
}

// ---- Building layers -------------------------------------------------------------------------

export type TarSpec =
  | { readonly type: 'dir'; readonly path: string; readonly mode?: number; readonly uid?: number; readonly gid?: number; readonly mtime?: number }
  | { readonly type: 'file'; readonly path: string; readonly content: Buffer | string; readonly mode?: number; readonly uid?: number; readonly gid?: number; readonly mtime?: number }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string; readonly uid?: number; readonly gid?: number; readonly mtime?: number }
  | { readonly type: 'hardlink'; readonly path: string; readonly target: string }
  | { readonly type: 'fifo'; readonly path: string; readonly mode?: number };

const DEFAULT_MTIME = 1_700_000_000;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function header(name: string, typeflag: string, size: number, mode: number, uid: number, gid: number, mtime: number, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(uid, 8), 108, 'ascii');
  h.write(octal(gid, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(typeflag, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

function pad(data: Buffer): Buffer {
  const extra = (512 - (data.length % 512)) % 512;
  return extra === 0 ? data : Buffer.concat([data, Buffer.alloc(extra)]);
}

/** A tar archive of `entries`, with PAX headers for names or link targets over 100 bytes. */
export function buildTar(entries: readonly TarSpec[]): Buffer {
  const parts: Buffer[] = [];
  // A hard link's header carries its target's mode, as GNU tar writes it: Docker's extractor
  // chmods the (shared) inode to the link header's mode, so 0644 there would strip the target's x bit.
  const fileModes = new Map<string, number>();
  for (const e of entries) {
    const mtime = 'mtime' in e && e.mtime !== undefined ? e.mtime : DEFAULT_MTIME;
    const uid = 'uid' in e && e.uid !== undefined ? e.uid : 0;
    const gid = 'gid' in e && e.gid !== undefined ? e.gid : 0;
    const link = e.type === 'symlink' || e.type === 'hardlink' ? e.target : '';
    const name = e.type === 'dir' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
    let pax = '';
    if (Buffer.byteLength(name) > 100) pax += paxRecord('path', name);
    if (Buffer.byteLength(link) > 100) pax += paxRecord('linkpath', link);
    if (pax !== '') {
      const data = Buffer.from(pax, 'utf8');
      parts.push(header('PaxHeader', 'x', data.length, 0o644, 0, 0, mtime), pad(data));
    }
    const shortName = name.slice(0, 100);
    switch (e.type) {
      case 'dir':
        parts.push(header(shortName, '5', 0, e.mode ?? 0o755, uid, gid, mtime));
        break;
      case 'file': {
        const data = Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content, 'utf8');
        fileModes.set(e.path, e.mode ?? 0o644);
        parts.push(header(shortName, '0', data.length, e.mode ?? 0o644, uid, gid, mtime), pad(data));
        break;
      }
      case 'symlink':
        parts.push(header(shortName, '2', 0, 0o777, uid, gid, mtime, link.slice(0, 100)));
        break;
      case 'hardlink':
        parts.push(header(shortName, '1', 0, fileModes.get(e.target) ?? 0o644, uid, gid, mtime, link.slice(0, 100)));
        break;
      case 'fifo':
        parts.push(header(shortName, '6', 0, e.mode ?? 0o644, uid, gid, mtime));
        break;
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Applets linked to busybox in the test image: hard links and symlinks both. */
export const BUSYBOX_HARDLINK_APPLETS = ['sh', 'ls', 'cat'] as const;
export const BUSYBOX_SYMLINK_APPLETS = ['echo', 'id', 'stat', 'readlink', 'test', 'true'] as const;

/** The entries of a minimal busybox root: /bin/busybox from busybox-static, applet links, /etc, /tmp. */
export async function busyboxEntries(): Promise<TarSpec[]> {
  const busybox = await readFile(BUSYBOX_PATH);
  return [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
    ...BUSYBOX_HARDLINK_APPLETS.map((a): TarSpec => ({ type: 'hardlink', path: `bin/${a}`, target: 'bin/busybox' })),
    ...BUSYBOX_SYMLINK_APPLETS.map((a): TarSpec => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' },
    { type: 'file', path: 'etc/group', content: 'root:x:0:\nnobody:x:65534:\n' },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'root', mode: 0o700 },
  ];
}

// ---- Pushing ---------------------------------------------------------------------------------

export interface ImageConfigSpec {
  readonly Entrypoint?: string[];
  readonly Cmd?: string[];
  readonly Env?: string[];
  readonly User?: string;
  readonly WorkingDir?: string;
  readonly StopSignal?: string;
  readonly ExposedPorts?: Record<string, object>;
  readonly Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; Retries?: number; StartPeriod?: number };
  readonly Labels?: Record<string, string>;
}

export interface PushImageOptions {
  readonly repository: string;
  /** Tag or nothing (push by digest only). */
  readonly tag?: string;
  /** Uncompressed layer tars, bottom first. */
  readonly layers: readonly Buffer[];
  readonly config?: ImageConfigSpec;
  readonly format?: 'oci' | 'docker';
  readonly architecture?: string;
  readonly os?: string;
  readonly variant?: string;
  /** gzip level; 0 stores (still gzip framing). */
  readonly gzipLevel?: number;
}

export interface PushedImage {
  readonly manifestDigest: string;
  readonly manifestSize: number;
  readonly configDigest: string;
  readonly layerDigests: readonly string[];
  readonly diffIds: readonly string[];
  readonly layerBytes: number;
}

/** This machine's architecture in OCI terms (the test images are built for it by default). */
export const HOST_ARCH: string = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' } as Record<string, string>)[process.arch] ?? process.arch;

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function check(res: Response, what: string, want: number): Promise<void> {
  if (res.status !== want) throw new Error(`${what}: HTTP ${res.status}: ${await res.text()}`);
}

function authHeaders(reg: PushTarget, repository: string): Record<string, string> {
  const authorization = reg.pushAuthorization(repository);
  return authorization !== undefined ? { authorization } : {};
}

/** Uploads a blob monolithically (POST then PUT with the digest). */
export async function pushBlob(reg: PushTarget, repository: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const base = `http://${reg.directHost}`;
  const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: authHeaders(reg, repository) });
  await check(start, `start upload to ${repository}`, 202);
  const location = new URL(start.headers.get('location') ?? '', base);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    body: data,
    headers: { ...authHeaders(reg, repository), 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
  });
  await check(put, `upload blob ${digest}`, 201);
  return digest;
}

export async function pushManifest(reg: PushTarget, repository: string, reference: string, body: Buffer, mediaType: string): Promise<void> {
  const res = await fetch(`http://${reg.directHost}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    body,
    headers: { ...authHeaders(reg, repository), 'content-type': mediaType },
  });
  await check(res, `push manifest ${repository}:${reference}`, 201);
}

/** Builds config + manifest for `layers`, pushes everything, and returns the digests. */
export async function pushImage(reg: PushTarget, opts: PushImageOptions): Promise<PushedImage> {
  const oci = (opts.format ?? 'oci') === 'oci';
  const diffIds = opts.layers.map(sha256);
  const compressed = opts.layers.map((l) => gzipSync(l, { level: opts.gzipLevel ?? 6 }));
  const layerDigests: string[] = [];
  for (const blob of compressed) layerDigests.push(await pushBlob(reg, opts.repository, blob));
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.architecture ?? HOST_ARCH,
      os: opts.os ?? 'linux',
      ...(opts.variant !== undefined ? { variant: opts.variant } : {}),
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], ...opts.config },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: opts.layers.map(() => ({ created_by: 'shoal test fixture' })),
    }),
  );
  const configDigest = await pushBlob(reg, opts.repository, config);
  const manifestType = oci ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json', digest: configDigest, size: config.length },
      layers: compressed.map((c, i) => ({
        mediaType: oci ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.docker.image.rootfs.diff.tar.gzip',
        digest: layerDigests[i],
        size: c.length,
      })),
    }),
  );
  const manifestDigest = sha256(manifest);
  await pushManifest(reg, opts.repository, opts.tag ?? manifestDigest, manifest, manifestType);
  return {
    manifestDigest,
    manifestSize: manifest.length,
    configDigest,
    layerDigests,
    diffIds,
    layerBytes: compressed.reduce((n, c) => n + c.length, 0),
  };
}

export interface IndexEntry {
  readonly image: PushedImage;
  readonly platform: { readonly os: string; readonly architecture: string; readonly variant?: string };
}

/** Pushes a manifest list (docker) or OCI index over already pushed images. */
export async function pushIndex(reg: PushTarget, repository: string, tag: string, entries: readonly IndexEntry[], format: 'oci' | 'docker' = 'oci'): Promise<string> {
  const oci = format === 'oci';
  const mediaType = oci ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json';
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: entries.map((e) => ({
        mediaType: oci ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json',
        digest: e.image.manifestDigest,
        size: e.image.manifestSize,
        platform: e.platform,
      })),
    }),
  );
  await pushManifest(reg, repository, tag, body, mediaType);
  return sha256(body);
}
