// Test fixture: Debian's `docker-registry` (the CNCF distribution registry) on a loopback port
// with a temporary storage dir, behind a small counting proxy that can also cut blob downloads
// short; plus helpers that build small images from Debian's `busybox-static` (layers are tar
// archives built here in code) and push them through the registry HTTP API.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, open } from 'node:fs/promises';
import { createServer, request as httpRequest, Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const REGISTRY_START_TIMEOUT_MS = 15_000;
const REGISTRY_STOP_TIMEOUT_MS = 5_000;
const BUSYBOX_PATH = '/bin/busybox';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

export interface RegistryFixtureOptions {
  /** Turns on htpasswd (basic) auth with this one user. */
  readonly basicAuth?: { readonly username: string; readonly password: string };
  /**
   * Turns on token auth: a token server in this process (realm on loopback) issues ES256 JWTs
   * signed by a throw-away certificate the registry trusts, to this one user.
   */
  readonly tokenAuth?: { readonly username: string; readonly password: string };
}

export interface RegistryFixture {
  /** `127.0.0.1:PORT` of the counting proxy: what pulls should use. */
  readonly host: string;
  /** `127.0.0.1:PORT` of the registry itself (pushes go here, not counted). */
  readonly directHost: string;
  readonly storageDir: string;
  /** Requests seen by the proxy, in order. */
  readonly requests: RecordedRequest[];
  /** Blob digests whose GET the proxy cuts off after half the body. */
  readonly truncateBlobs: Set<string>;
  /** Path endings (`/manifests/v1`, `/blobs/sha256:…`) whose GET the proxy stalls after half the body. */
  readonly stallPaths: Set<string>;
  /** Authorization header for pushes to `repository` when auth is on. */
  pushAuthorization(repository: string): string | undefined;
  /** Requests the token server answered (token auth only), in order: `account scope`. */
  readonly tokenRequests: string[];
  /** Count of proxy GETs of one blob. */
  blobGets(digest: string): number;
  /** Flips one byte of a stored blob on disk (the registry serves it as is). */
  corruptBlob(digest: string): Promise<void>;
  stop(): Promise<void>;
}

function waitForListening(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => done(new Error(`docker-registry did not start within ${REGISTRY_START_TIMEOUT_MS} ms: ${seen.slice(-2000)}`)), REGISTRY_START_TIMEOUT_MS);
    const onData = (d: Buffer): void => {
      seen += d.toString('utf8');
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(seen);
      if (m !== null) done(undefined, Number(m[1]));
      if (seen.length > 100_000) seen = seen.slice(-10_000);
    };
    const onExit = (code: number | null): void => done(new Error(`docker-registry exited (${code}) before listening: ${seen.slice(-2000)}`));
    function done(err: Error | undefined, port?: number): void {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      // Keep draining its output so the registry never blocks on a full pipe.
      child.stderr?.resume();
      child.stdout?.resume();
      if (err !== undefined) reject(err);
      else resolve(port as number);
    }
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), REGISTRY_STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Starts the registry (and its proxy). Call stop() in afterAll/afterEach. */
export async function startRegistry(options: RegistryFixtureOptions = {}): Promise<RegistryFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-registry-'));
  const storageDir = join(dir, 'data');
  let authYaml = '';
  let pushAuthorization = (_repository: string): string | undefined => undefined;
  const tokenRequests: string[] = [];
  let tokenServer: Server | undefined;
  if (options.tokenAuth !== undefined) {
    const issuer = await startTokenServer(dir, options.tokenAuth, tokenRequests);
    tokenServer = issuer.server;
    authYaml = [
      'auth:',
      '  token:',
      `    realm: ${issuer.realm}`,
      `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`,
      `    rootcertbundle: ${issuer.certPath}`,
      '',
    ].join('\n');
    pushAuthorization = (repository) => `Bearer ${issuer.mint(options.tokenAuth?.username ?? '', [{ type: 'repository', name: repository, actions: ['pull', 'push'] }])}`;
  } else if (options.basicAuth !== undefined) {
    const { username, password } = options.basicAuth;
    // The registry only accepts bcrypt entries; htpasswd (apache2-utils) makes them.
    const line = execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' }).trim();
    await writeFile(join(dir, 'htpasswd'), `${line}\n`);
    authYaml = `auth:\n  htpasswd:\n    realm: shoal-test\n    path: ${join(dir, 'htpasswd')}\n`;
    const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    pushAuthorization = () => basic;
  }
  const config = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    '  addr: 127.0.0.1:0',
    '  secret: shoal-test-secret',
    authYaml,
  ].join('\n');
  await writeFile(join(dir, 'config.yml'), config);

  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let proxy: Server | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  try {
    const registryPort = await waitForListening(child);
    const requests: RecordedRequest[] = [];
    const truncateBlobs = new Set<string>();
    const stallPaths = new Set<string>();
    proxy = createServer((req, res) => {
      const path = req.url ?? '/';
      const upstream = httpRequest(
        { host: '127.0.0.1', port: registryPort, method: req.method, path, headers: req.headers, agent },
        (up) => {
          requests.push({ method: req.method ?? 'GET', path, status: up.statusCode ?? 0 });
          res.writeHead(up.statusCode ?? 502, up.headers);
          const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path)?.[1];
          if (req.method === 'GET' && digest !== undefined && truncateBlobs.has(digest) && (up.statusCode ?? 0) === 200) {
            const total = Number(up.headers['content-length'] ?? 0);
            let sent = 0;
            up.on('data', (chunk: Buffer) => {
              const room = Math.floor(total / 2) - sent;
              if (room > 0) res.write(chunk.subarray(0, room));
              sent += chunk.length;
              if (sent >= total / 2) {
                up.destroy();
                // Cut the connection with the promised length unmet: a truncated transfer.
                res.socket?.destroy();
              }
            });
            return;
          }
          if (req.method === 'GET' && [...stallPaths].some((p) => path.endsWith(p)) && (up.statusCode ?? 0) === 200) {
            const total = Number(up.headers['content-length'] ?? 0);
            const head: Buffer[] = [];
            up.on('data', (chunk: Buffer) => head.push(chunk));
            up.on('end', () => {
              // Half the body, then silence with the connection held open (until stop()).
              res.write(Buffer.concat(head).subarray(0, Math.floor(total / 2)));
            });
            return;
          }
          up.pipe(res);
        },
      );
      upstream.on('error', (err) => {
        res.writeHead(502);
        res.end(String(err));
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy?.listen(0, '127.0.0.1', resolve));
    const proxyPort = (proxy.address() as AddressInfo).port;
    const server = proxy;
    return {
      host: `127.0.0.1:${proxyPort}`,
      directHost: `127.0.0.1:${registryPort}`,
      storageDir,
      requests,
      truncateBlobs,
      stallPaths,
      pushAuthorization,
      tokenRequests,
      blobGets: (digest) => requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)).length,
      corruptBlob: async (digest) => {
        const hex = digest.slice('sha256:'.length);
        const file = join(storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
        const fh = await open(file, 'r+');
        try {
          const { size } = await fh.stat();
          const at = Math.floor(size / 2);
          const b = Buffer.alloc(1);
          await fh.read(b, 0, 1, at);
          b[0] = (b[0] ?? 0) ^ 0xff;
          await fh.write(b, 0, 1, at);
        } finally {
          await fh.close();
        }
      },
      stop: async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        agent.destroy();
        await stopChild(child);
        if (tokenServer !== undefined) await closeServer(tokenServer);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (tokenServer !== undefined) await closeServer(tokenServer);
    proxy?.close();
    agent.destroy();
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// ---- Token auth -----------------------------------------------------------------------------

const TOKEN_SERVICE = 'shoal-test-registry';
const TOKEN_ISSUER = 'shoal-test-issuer';
const TOKEN_LIFETIME_S = 300;

interface TokenAccess {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A Docker-style token server: GET /token?service=&scope= with Basic credentials → {token}. */
async function startTokenServer(
  dir: string,
  user: { readonly username: string; readonly password: string },
  log: string[],
): Promise<{ server: Server; realm: string; certPath: string; mint: (account: string, access: readonly TokenAccess[]) => string }> {
  const keyPath = join(dir, 'token-key.pem');
  const certPath = join(dir, 'token-cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=shoal-test-token-issuer'], { stdio: 'ignore' });
  const key = createPrivateKey(await readFile(keyPath));
  const der = new X509Certificate(await readFile(certPath)).raw;
  const b64u = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const mint = (account: string, access: readonly TokenAccess[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const head = b64u({ typ: 'JWT', alg: 'ES256', x5c: [der.toString('base64')] });
    const claims = b64u({ iss: TOKEN_ISSUER, sub: account, aud: TOKEN_SERVICE, exp: now + TOKEN_LIFETIME_S, nbf: now - 10, iat: now, jti: randomUUID(), access });
    const signature = sign('sha256', Buffer.from(`${head}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
    return `${head}.${claims}.${signature.toString('base64url')}`;
  };
  const expected = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const scopes = url.searchParams.getAll('scope');
    log.push(`${url.searchParams.get('account') ?? '-'} ${scopes.join(' ')}`);
    if (url.pathname !== '/token' || url.searchParams.get('service') !== TOKEN_SERVICE) {
      res.writeHead(400).end('bad token request');
      return;
    }
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    const access = scopes.map((s): TokenAccess => {
      const [type = '', name = '', actions = ''] = s.split(':');
      return { type, name, actions: actions.split(',') };
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: mint(user.username, access), expires_in: TOKEN_LIFETIME_S }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, realm: `http://127.0.0.1:${port}/token`, certPath, mint };
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
        parts.push(header(shortName, '0', data.length, e.mode ?? 0o644, uid, gid, mtime), pad(data));
        break;
      }
      case 'symlink':
        parts.push(header(shortName, '2', 0, 0o777, uid, gid, mtime, link.slice(0, 100)));
        break;
      case 'hardlink':
        parts.push(header(shortName, '1', 0, 0o644, uid, gid, mtime, link.slice(0, 100)));
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

function authHeaders(reg: RegistryFixture, repository: string): Record<string, string> {
  const authorization = reg.pushAuthorization(repository);
  return authorization !== undefined ? { authorization } : {};
}

/** Uploads a blob monolithically (POST then PUT with the digest). */
export async function pushBlob(reg: RegistryFixture, repository: string, data: Buffer): Promise<string> {
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

export async function pushManifest(reg: RegistryFixture, repository: string, reference: string, body: Buffer, mediaType: string): Promise<void> {
  const res = await fetch(`http://${reg.directHost}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    body,
    headers: { ...authHeaders(reg, repository), 'content-type': mediaType },
  });
  await check(res, `push manifest ${repository}:${reference}`, 201);
}

/** Builds config + manifest for `layers`, pushes everything, and returns the digests. */
export async function pushImage(reg: RegistryFixture, opts: PushImageOptions): Promise<PushedImage> {
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
export async function pushIndex(reg: RegistryFixture, repository: string, tag: string, entries: readonly IndexEntry[], format: 'oci' | 'docker' = 'oci'): Promise<string> {
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
