// Test fixture: Debian's `docker-registry` (the CNCF distribution registry) on a loopback port
// with a temporary storage dir, behind a small counting proxy that can also cut blob downloads
// short; plus helpers that build small images from Debian's `busybox-static` (layers are tar
// archives built here in code) and push them through the registry HTTP API.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, open } from 'node:fs/promises';
import { createServer, request as httpRequest, Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REGISTRY_START_TIMEOUT_MS = 15_000;
const REGISTRY_STOP_TIMEOUT_MS = 5_000;

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

export * from '../image/push.js';
