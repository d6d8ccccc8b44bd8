// The local HTTP API server: Docker Engine API semantics on a unix socket. It owns routing (with
// `/vX.Y` prefixes and unversioned paths), request bodies (size limit, JSON), the headers every
// response carries, and Docker's error body. Handlers are registered by the daemon and by the
// parts that plug into it (the manager registers /swarm, /nodes, /services, ...).
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { API_VERSION, MIN_API_VERSION, SHOAL_VERSION, compareApiVersions } from '../../version.js';
import { ApiError, InvalidArgumentError, NotFoundError, PayloadTooLargeError, toApiError } from './errors.js';
import { compareSpecificity, compilePattern, matchPattern, splitVersionPrefix, type CompiledPattern } from './router.js';

/** Default request body limit: well above Docker's 1000 KiB config/secret data once base64'd. */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
const CLOSE_GRACE_MS = 2_000;

export interface ApiRequest {
  readonly method: string;
  /** The path without the version prefix, e.g. `/services/web`. */
  readonly path: string;
  /** The version from the `/vX.Y` prefix, or the latest we serve when there is none. */
  readonly apiVersion: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The raw request and response, for handlers that stream (logs). */
  readonly raw: IncomingMessage;
  readonly response: ServerResponse;
  /** Aborted when the client goes away; long-running handlers (follow streams) stop on it. */
  readonly signal: AbortSignal;
  /** The request body (up to the route's limit; 413 beyond it). */
  body(): Promise<Buffer>;
  /** The body parsed as JSON; undefined when the body is empty; 400 when malformed. */
  json(): Promise<unknown>;
}

export type Reply =
  | { readonly kind: 'json'; readonly status: number; readonly body: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly kind: 'empty'; readonly status: number; readonly headers?: Readonly<Record<string, string>> }
  | { readonly kind: 'text'; readonly status: number; readonly text: string; readonly contentType: string; readonly headers?: Readonly<Record<string, string>> }
  /** The handler wrote (or is writing) the response itself through `req.response`. */
  | { readonly kind: 'handled' };

export type Handler = (req: ApiRequest) => Promise<Reply> | Reply;

export const reply = {
  json: (body: unknown, status = 200, headers?: Readonly<Record<string, string>>): Reply => ({ kind: 'json', status, body, ...(headers ? { headers } : {}) }),
  empty: (status = 200, headers?: Readonly<Record<string, string>>): Reply => ({ kind: 'empty', status, ...(headers ? { headers } : {}) }),
  text: (text: string, status = 200, contentType = 'text/plain; charset=utf-8', headers?: Readonly<Record<string, string>>): Reply => ({
    kind: 'text',
    status,
    text,
    contentType,
    ...(headers ? { headers } : {}),
  }),
  handled: (): Reply => ({ kind: 'handled' }),
} as const;

export interface RouteOptions {
  readonly maxBodyBytes?: number;
}

interface Route extends CompiledPattern {
  readonly methods: ReadonlySet<string>;
  readonly handler: Handler;
  readonly maxBodyBytes: number;
  readonly seq: number;
  /** The pattern's first segment when it is a literal ('' for `/`), else null. */
  readonly firstLiteral: string | null;
}

/** Distinct `METHOD firstSegment` keys remembered (paths come from clients: bounded). */
const MAX_CANDIDATE_KEYS = 256;

function firstLiteral(pattern: string): string | null {
  const slash = pattern.indexOf('/', 1);
  const seg = slash < 0 ? pattern.slice(1) : pattern.slice(1, slash);
  return seg.startsWith('{') || seg === '*' ? null : seg;
}

export interface ApiServerOptions {
  readonly logger: Logger;
  readonly maxBodyBytes?: number;
}

export type ErrorMapper = (err: unknown) => ApiError | undefined;

export class ApiServer {
  private readonly routes: Route[] = [];
  /** `METHOD firstSegment` → candidates(); cleared when a route is added. */
  private readonly candidateCache = new Map<string, readonly Route[]>();
  private readonly mappers: ErrorMapper[] = [];
  private readonly log: Logger;
  private readonly maxBodyBytes: number;
  private seq = 0;
  private server: Server | undefined;

  constructor(opts: ApiServerOptions) {
    this.log = opts.logger;
    this.maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  /** The API's logger, for routes registered beside the server (distribution). */
  get logger(): Logger {
    return this.log;
  }

  /**
   * Registers a handler. `method` is one method or several (`HEAD` is never implied); `pattern` as
   * in router.ts. A more specific pattern wins over a catch-all registered earlier.
   */
  route(method: string | readonly string[], pattern: string, handler: Handler, opts: RouteOptions = {}): this {
    const methods = new Set((typeof method === 'string' ? [method] : method).map((m) => m.toUpperCase()));
    const compiled = compilePattern(pattern);
    this.routes.push({ ...compiled, methods, handler, maxBodyBytes: opts.maxBodyBytes ?? this.maxBodyBytes, seq: this.seq++, firstLiteral: firstLiteral(compiled.pattern) });
    this.routes.sort(compareSpecificity);
    this.candidateCache.clear();
    return this;
  }

  /** Lets a part translate its own typed errors into statuses (first mapper that answers wins). */
  addErrorMapper(mapper: ErrorMapper): this {
    this.mappers.push(mapper);
    return this;
  }

  /** Serves on a unix socket path (the caller makes sure the path is free). */
  async listenUnix(path: string): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** Stops accepting, lets in-flight requests finish for a short grace, then cuts the rest. */
  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    await closed;
    clearTimeout(timer);
  }

  /** Handles one request (exported for tests that drive the server without a socket). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = this.log.isLevelEnabled('debug') ? process.hrtime.bigint() : 0n;
    const method = (req.method ?? 'GET').toUpperCase();
    let url: ParsedUrl;
    try {
      url = parseUrl(req.url ?? '/');
    } catch {
      this.sendError(res, new InvalidArgumentError(`malformed request URL: ${req.url ?? ''}`));
      return;
    }
    const { version, rest } = splitVersionPrefix(url.pathname);
    try {
      if (version !== undefined) checkVersion(version);
      const found = this.find(method, rest);
      const request = new Request(req, res, method, rest, version ?? API_VERSION, found.params, url.search, found.route.maxBodyBytes);
      const result = await found.route.handler(request);
      this.send(res, method, result);
    } catch (err) {
      const apiErr = toApiError(err, this.mappers);
      if (apiErr.status >= 500 && apiErr.status !== 503) this.log.error({ err, method, path: url.pathname }, 'request failed');
      if (res.headersSent) {
        res.destroy();
      } else {
        if (apiErr instanceof PayloadTooLargeError) res.setHeader('Connection', 'close');
        this.sendError(res, apiErr);
      }
    } finally {
      if (this.log.isLevelEnabled('debug')) this.log.debug({ method, path: url.pathname, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'request');
    }
  }

  /**
   * The routes that can match a method and a path's first segment, in the order find() tries them:
   * those with that method whose pattern starts with that literal segment or with a parameter or
   * catch-all. A write is matched against a handful of patterns instead of every route (the
   * patterns are matched against the raw path, so a literal first segment matches only itself).
   */
  private candidates(method: string, path: string): readonly Route[] {
    const slash = path.indexOf('/', 1);
    const first = slash < 0 ? path.slice(1) : path.slice(1, slash);
    const key = `${method} ${first}`;
    let list = this.candidateCache.get(key);
    if (list === undefined) {
      list = this.routes.filter((r) => r.methods.has(method) && (r.firstLiteral === null || r.firstLiteral === first));
      if (this.candidateCache.size < MAX_CANDIDATE_KEYS) this.candidateCache.set(key, list);
    }
    return list;
  }

  private find(method: string, path: string): { route: Route; params: Record<string, string> } {
    for (const route of this.candidates(method, path)) {
      let params: Record<string, string> | undefined;
      try {
        params = matchPattern(route, path);
      } catch {
        throw new InvalidArgumentError(`malformed percent-encoding in path ${path}`);
      }
      if (params !== undefined) return { route, params };
    }
    // Docker answers unknown paths and wrong methods alike (moby: notFoundHandler for both).
    throw new NotFoundError('page not found');
  }

  private send(res: ServerResponse, method: string, r: Reply): void {
    if (r.kind === 'handled') return;
    switch (r.kind) {
      case 'json': {
        // A string body goes out in one write with the head (a Buffer is written beside it).
        const text = `${JSON.stringify(r.body)}\n`;
        writeHead(res, r.status, r.headers, 'application/json', Buffer.byteLength(text, 'utf8'));
        if (method === 'HEAD') res.end();
        else res.end(text, 'utf8');
        return;
      }
      case 'text': {
        const data = Buffer.from(r.text, 'utf8');
        writeHead(res, r.status, r.headers, r.contentType, data.length);
        res.end(method === 'HEAD' ? undefined : data);
        return;
      }
      case 'empty':
        writeHead(res, r.status, r.headers, undefined, 0);
        res.end();
        return;
    }
  }

  private sendError(res: ServerResponse, err: ApiError): void {
    // Exactly `application/json`: the docker CLI compares the string (docker-api.md §1.3).
    const text = `${JSON.stringify({ message: err.message })}\n`;
    writeHead(res, err.status, undefined, 'application/json', Buffer.byteLength(text, 'utf8'));
    res.end(text, 'utf8');
  }
}

/**
 * One request as handlers see it. A class (methods on its prototype) rather than an object of
 * closures: a small write made six closures per request for what most handlers never call. The
 * query, the abort signal and the common headers on the response are made when first asked for.
 */
class Request implements ApiRequest {
  private bodyPromise: Promise<Buffer> | undefined;
  private queryParams: URLSearchParams | undefined;
  private abort: AbortController | undefined;
  private commonSet = false;

  constructor(
    readonly raw: IncomingMessage,
    private readonly res: ServerResponse,
    readonly method: string,
    readonly path: string,
    readonly apiVersion: string,
    readonly params: Readonly<Record<string, string>>,
    private readonly search: string,
    private readonly maxBodyBytes: number,
  ) {}

  get headers(): IncomingHttpHeaders {
    return this.raw.headers;
  }

  get query(): URLSearchParams {
    return (this.queryParams ??= new URLSearchParams(this.search));
  }

  /** A handler that writes the response itself gets the headers every answer carries set on it first. */
  get response(): ServerResponse {
    if (!this.commonSet) {
      this.commonSet = true;
      setCommonHeaders(this.res);
    }
    return this.res;
  }

  get signal(): AbortSignal {
    if (this.abort === undefined) {
      const a = (this.abort = new AbortController());
      const response = this.res;
      // Only a client that went away before the answer was complete aborts.
      if (response.closed) {
        if (!response.writableFinished) a.abort();
      } else {
        response.once('close', () => {
          if (!response.writableFinished) a.abort();
        });
      }
    }
    return this.abort.signal;
  }

  body(): Promise<Buffer> {
    return (this.bodyPromise ??= readBody(this.raw, this.maxBodyBytes));
  }

  async json(): Promise<unknown> {
    const buf = await this.body();
    if (buf.length === 0) return undefined;
    const text = buf.toString('utf8');
    // '{' or '[' first (what clients send) is not blank; only other bodies need the trim.
    const c = text.charCodeAt(0);
    if (c !== 0x7b && c !== 0x5b && text.trim() === '') return undefined;
    checkJsonContentType(this.raw.headers['content-type']);
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new InvalidArgumentError(`invalid JSON: ${(err as Error).message}`);
    }
  }
}

const COMMON_HEADERS: readonly string[] = ['Api-Version', API_VERSION, 'Docker-Experimental', 'false', 'Ostype', 'linux', 'Server', `Shoal/${SHOAL_VERSION} (linux)`];

function setCommonHeaders(res: ServerResponse): void {
  for (let i = 0; i < COMMON_HEADERS.length; i += 2) res.setHeader(COMMON_HEADERS[i]!, COMMON_HEADERS[i + 1]!);
}

/**
 * The whole head in one writeHead: the common headers, the reply's own, the content type and
 * length. Given as one flat list, node writes it without building its per-name header map (four
 * setHeader calls and a map per request were a few percent of a small request's CPU). Headers a
 * handler set on the response itself (it asked for `req.response`) are kept: then, as before,
 * they are merged by name.
 */
function writeHead(res: ServerResponse, status: number, own: Readonly<Record<string, string>> | undefined, contentType: string | undefined, length: number): void {
  if (res.getHeaderNames().length > 0) {
    if (!res.hasHeader('Api-Version')) setCommonHeaders(res);
    if (own) for (const k of Object.keys(own)) res.setHeader(k, own[k]!);
    if (contentType !== undefined) res.setHeader('Content-Type', contentType);
    res.setHeader('Content-Length', length);
    res.writeHead(status);
    return;
  }
  const head = [...COMMON_HEADERS];
  if (own) for (const k of Object.keys(own)) head.push(k, own[k]!);
  if (contentType !== undefined) head.push('Content-Type', contentType);
  head.push('Content-Length', String(length));
  res.writeHead(status, head);
}

interface ParsedUrl {
  /** Percent-encoded, as `URL.pathname` gives it. */
  readonly pathname: string;
  /** The query without `?` (may be empty). */
  readonly search: string;
}

const URL_BASE = 'http://shoal.local';
/** What a request target needs to be taken as is: an absolute path of plain characters. */
const PLAIN_PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;

/** `new URL(target)`'s pathname and search, without building a URL for the plain paths clients send. */
function parseUrl(target: string): ParsedUrl {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  // Dot segments ("/a/../b") and double slashes are what URL would rewrite: let it.
  if (PLAIN_PATH.test(path) && !path.includes('/.') && !path.includes('//') && !/%2e/i.test(path) && !target.includes('#')) {
    return { pathname: path, search: q < 0 ? '' : target.slice(q + 1) };
  }
  const url = new URL(target, URL_BASE);
  return { pathname: url.pathname, search: url.search.slice(1) };
}

/** Versions seen in request paths and why each is refused (null: served); a client sends the same one each time. */
const checkedVersions = new Map<string, string | null>();
const MAX_CHECKED_VERSIONS = 64;

function checkVersion(version: string): void {
  let refusal = checkedVersions.get(version);
  if (refusal === undefined) {
    refusal = versionRefusal(version);
    if (checkedVersions.size < MAX_CHECKED_VERSIONS) checkedVersions.set(version, refusal);
  }
  if (refusal !== null) throw new InvalidArgumentError(refusal);
}

function versionRefusal(version: string): string | null {
  if (compareApiVersions(version, MIN_API_VERSION) < 0) {
    return `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`;
  }
  if (compareApiVersions(version, API_VERSION) > 0) {
    return `client version ${version} is too new. Maximum supported API version is ${API_VERSION}`;
  }
  return null;
}

function checkJsonContentType(contentType: string | undefined): void {
  if (contentType === undefined || contentType === '' || contentType === 'application/json') return;
  const mime = contentType.split(';')[0]?.trim().toLowerCase();
  if (mime !== 'application/json') {
    throw new InvalidArgumentError(`unsupported Content-Type header (${contentType}): must be 'application/json'`);
  }
}

function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limitBytes) {
      req.resume();
      reject(new PayloadTooLargeError(limitBytes));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        req.resume();
        reject(new PayloadTooLargeError(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      // One chunk (a small body) is the body as it is: no copy.
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    function cleanup(): void {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
