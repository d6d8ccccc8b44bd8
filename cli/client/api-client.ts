// A client of the local Docker-compatible API over a unix socket, as the docker CLI talks to it:
// `HEAD /_ping` first (falling back to GET), then every call under `/v{negotiated}/`.
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { API_VERSION, compareApiVersions } from '../version.js';
import { CliError, DaemonResponseError } from '../errors.js';

export const DEFAULT_SOCKET = '/run/shoal/shoal.sock';
const REQUEST_TIMEOUT_MS = 60_000;
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** The daemon address from SHOAL_HOST, then DOCKER_HOST, then the default socket. */
export function resolveHost(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const host = explicit ?? env['SHOAL_HOST'] ?? env['DOCKER_HOST'];
  return host === undefined || host === '' ? `unix://${DEFAULT_SOCKET}` : host;
}

/** The socket path of a `unix:///path` host (the only transport the local API has). */
export function socketPathOf(host: string): string {
  if (host.startsWith('unix://')) {
    const path = host.slice('unix://'.length);
    if (path.startsWith('/')) return path;
  }
  if (host.startsWith('/')) return host;
  throw new CliError('ERR_BAD_HOST', `unsupported daemon host "${host}": use unix:///path/to/shoal.sock`);
}

export interface PingResult {
  readonly apiVersion: string;
  readonly osType: string;
  readonly experimental: boolean;
  readonly swarm: string;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

export class ApiClient {
  readonly host: string;
  private readonly socketPath: string;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 8 });
  private negotiated: Promise<string> | undefined;

  constructor(host: string, private readonly pinnedVersion?: string) {
    this.host = host;
    this.socketPath = socketPathOf(host);
  }

  close(): void {
    this.agent.destroy();
  }

  async ping(): Promise<PingResult> {
    let res = await this.raw('HEAD', '/_ping');
    if (res.status !== 200 && res.status !== 500) res = await this.raw('GET', '/_ping');
    const header = (name: string): string => String(res.headers[name] ?? '');
    return {
      apiVersion: header('api-version') || '1.24',
      osType: header('ostype'),
      experimental: header('docker-experimental') === 'true',
      swarm: header('swarm'),
    };
  }

  /** The API version used in paths: min(ours, the daemon's), negotiated once. */
  apiVersion(): Promise<string> {
    this.negotiated ??= this.pinnedVersion !== undefined
      ? Promise.resolve(this.pinnedVersion)
      : this.ping().then((p) => (compareApiVersions(p.apiVersion, API_VERSION) < 0 ? p.apiVersion : API_VERSION));
    return this.negotiated;
  }

  /** A versioned call whose 2xx body is JSON (or nothing); errors throw DaemonResponseError. */
  async call<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const version = await this.apiVersion();
    const res = await this.raw(method, `/v${version}${path}`, opts);
    if (res.status < 200 || res.status > 299) throw responseError(res, `/v${version}${path}`);
    if (res.body.length === 0) return undefined as T;
    try {
      return JSON.parse(res.body.toString('utf8')) as T;
    } catch {
      throw new CliError('ERR_DAEMON_RESPONSE', `the daemon answered ${method} ${path} with a body that is not JSON`);
    }
  }

  get<T = unknown>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.call<T>('GET', path, query ? { query } : {});
  }

  post<T = unknown>(path: string, body?: unknown, query?: RequestOptions['query']): Promise<T> {
    return this.call<T>('POST', path, { ...(body !== undefined ? { body } : {}), ...(query ? { query } : {}) });
  }

  delete<T = unknown>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.call<T>('DELETE', path, query ? { query } : {});
  }

  /** A versioned call whose response is streamed (logs); the caller consumes and closes it. */
  async stream(method: string, path: string, opts: RequestOptions = {}): Promise<IncomingMessage> {
    const version = await this.apiVersion();
    const full = `/v${version}${path}`;
    const res = await this.send(method, full, opts);
    if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) <= 299) return res;
    const body = await collect(res);
    throw responseError({ status: res.statusCode ?? 0, headers: res.headers, body }, full);
  }

  /** One request, unversioned path as given, body collected. */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<RawResponse> {
    const res = await this.send(method, path, opts);
    return { status: res.statusCode ?? 0, headers: res.headers, body: await collect(res) };
  }

  private send(method: string, path: string, opts: RequestOptions): Promise<IncomingMessage> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) qs.set(k, String(v));
    const fullPath = qs.size > 0 ? `${path}?${qs.toString()}` : path;
    const data = opts.body !== undefined ? Buffer.from(JSON.stringify(opts.body), 'utf8') : undefined;
    const headers: Record<string, string | number> = { Host: 'api.moby.localhost', 'User-Agent': 'Shoal-Client', ...opts.headers };
    if (data !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = data.length;
    } else if (method === 'POST' || method === 'PUT') {
      headers['Content-Length'] = 0;
    }
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method, path: fullPath, headers, agent: this.agent, timeout: REQUEST_TIMEOUT_MS }, resolve);
      req.once('timeout', () => req.destroy(new CliError('ERR_DAEMON_UNREACHABLE', `the daemon at ${this.host} did not answer ${method} ${path} within ${REQUEST_TIMEOUT_MS / 1000} s`)));
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof CliError) reject(err);
        else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES') {
          reject(new CliError('ERR_DAEMON_UNREACHABLE', `Cannot connect to the Shoal daemon at ${this.host} (${err.code}). Is shoald running?`));
        } else reject(new CliError('ERR_DAEMON_UNREACHABLE', `request to the daemon at ${this.host} failed: ${err.message}`));
      });
      req.end(data);
    });
  }
}

function collect(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy(new CliError('ERR_DAEMON_RESPONSE', `response larger than ${MAX_RESPONSE_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.once('end', () => resolve(Buffer.concat(chunks)));
    res.once('error', reject);
  });
}

function responseError(res: RawResponse, path: string): DaemonResponseError {
  const text = res.body.toString('utf8').trim();
  if (text === '') return new DaemonResponseError(res.status, `request returned ${res.status} for API route and version ${path}, check if the server supports the requested API version`);
  if (res.headers['content-type'] === 'application/json') {
    try {
      const parsed = JSON.parse(text) as { message?: unknown };
      if (typeof parsed.message === 'string') return new DaemonResponseError(res.status, parsed.message);
    } catch {
      // fall through to the raw text
    }
  }
  return new DaemonResponseError(res.status, text);
}
