// One registry endpoint for one repository, over the OCI distribution API with the global
// fetch (undici). Handles the 401 challenge dance: Basic with the credentials given, or Bearer
// tokens from the realm named in the challenge (cached per scope until they expire).
import type { Logger } from 'pino';
import { parseChallenges, type AuthChallenge, type RegistryCredentials } from './auth.js';
import { sha256Digest } from './digest.js';
import { MANIFEST_ACCEPT } from './manifest.js';

export interface Endpoint {
  /** `https://registry-1.docker.io` or `http://127.0.0.1:5000` (no trailing slash). */
  readonly baseUrl: string;
  /** True for a configured mirror, so errors can say which endpoint failed. */
  readonly mirror: boolean;
}

/** Why a request failed, before the store turns it into an ImagePullError naming the image. */
export class RegistryRequestError extends Error {
  override readonly name = 'RegistryRequestError';
  constructor(
    readonly kind: 'unreachable' | 'unauthorized' | 'not-found' | 'http' | 'bad-response' | 'digest-mismatch' | 'truncated',
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RegistryClientOptions {
  readonly endpoint: Endpoint;
  readonly repository: string;
  readonly credentials: RegistryCredentials | undefined;
  readonly logger: Logger;
  /** Time allowed for the response headers of one request. */
  readonly requestTimeoutMs: number;
  readonly userAgent: string;
  readonly signal?: AbortSignal | undefined;
}

const MANIFEST_MAX_BYTES = 4 << 20;
const ERROR_BODY_MAX_BYTES = 64 << 10;
/** Manifests, configs, tokens and error bodies are small: this is ample on any working link. */
const BODY_TIMEOUT_MS = 60_000;
const TOKEN_DEFAULT_LIFETIME_S = 60;
/** 401 → authenticate → retry, at most this many rounds per request. */
const AUTH_ROUNDS_MAX = 2;

interface Token {
  readonly value: string;
  readonly expiresAtMs: number;
}

export interface FetchedManifest {
  readonly body: Buffer;
  readonly contentType: string | undefined;
  /** sha256 of the bytes received. */
  readonly digest: string;
}

/** Reads at most maxBytes of a body within timeoutMs; longer or slower bodies are an error. */
export async function readBodyLimited(res: Response, maxBytes: number, timeoutMs = BODY_TIMEOUT_MS): Promise<Buffer> {
  if (res.body === null) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RegistryRequestError('truncated', `response body not complete within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), deadline]);
      if (done) break;
      total += value.length;
      if (total > maxBytes) throw new RegistryRequestError('bad-response', `response larger than ${maxBytes} bytes`);
      chunks.push(Buffer.from(value));
    }
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}

/** `MANIFEST_UNKNOWN: manifest unknown` from a registry's JSON error body, or the status text. */
async function describeError(res: Response): Promise<string> {
  let text = `HTTP ${res.status} ${res.statusText}`.trim();
  try {
    const body = await readBodyLimited(res, ERROR_BODY_MAX_BYTES);
    const doc = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const first = doc.errors?.[0];
    if (first !== undefined) text = `${first.code ?? 'ERROR'}: ${first.message ?? ''} (HTTP ${res.status})`;
  } catch {
    // not JSON: keep the status line
  }
  return text;
}

function causeText(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const inner = e.cause?.code ?? e.cause?.message;
  return inner !== undefined ? `${e.message ?? String(err)} (${inner})` : (e.message ?? String(err));
}

export class RegistryClient {
  private readonly tokens = new Map<string, Token>();
  private basic = false;

  constructor(private readonly opts: RegistryClientOptions) {}

  get endpoint(): Endpoint {
    return this.opts.endpoint;
  }

  private url(kind: 'manifests' | 'blobs', ref: string): string {
    return `${this.opts.endpoint.baseUrl}/v2/${this.opts.repository}/${kind}/${ref}`;
  }

  private defaultScope(): string {
    return `repository:${this.opts.repository}:pull`;
  }

  private authorization(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token !== undefined && token.expiresAtMs > Date.now()) return `Bearer ${token.value}`;
    const c = this.opts.credentials;
    if (this.basic && c?.username !== undefined) return `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}`;
    return undefined;
  }

  private async send(url: string, headers: Record<string, string>, what: string): Promise<Response> {
    // The timeout covers the wait for response headers only: a large blob may take longer to
    // stream, and the body has its own idle timeout (layer-download.ts). So the controller is
    // aborted by a timer that is cleared once headers are in, not by AbortSignal.timeout.
    const headersDeadline = new AbortController();
    const timer = setTimeout(() => headersDeadline.abort(), this.opts.requestTimeoutMs);
    const signal = this.opts.signal !== undefined ? AbortSignal.any([this.opts.signal, headersDeadline.signal]) : headersDeadline.signal;
    try {
      return await fetch(url, { headers: { 'user-agent': this.opts.userAgent, ...headers }, signal, redirect: 'follow' });
    } catch (err) {
      if (this.opts.signal?.aborted === true) throw err;
      const why = headersDeadline.signal.aborted ? `no response within ${this.opts.requestTimeoutMs} ms` : causeText(err);
      throw new RegistryRequestError('unreachable', `${what}: registry ${this.opts.endpoint.baseUrl} unreachable: ${why}`, undefined, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** GET with the auth dance; returns a 2xx response or throws RegistryRequestError. */
  private async get(url: string, accept: string | undefined, what: string): Promise<Response> {
    const scope = this.defaultScope();
    for (let round = 0; ; round++) {
      const headers: Record<string, string> = {};
      if (accept !== undefined) headers.accept = accept;
      const auth = this.authorization(scope);
      if (auth !== undefined) headers.authorization = auth;
      const res = await this.send(url, headers, what);
      if (res.ok) return res;
      if (res.status === 401 && round < AUTH_ROUNDS_MAX) {
        const challenges = parseChallenges(res.headers.get('www-authenticate'));
        await res.body?.cancel().catch(() => undefined);
        if (await this.authenticate(challenges, scope, what)) continue;
        throw new RegistryRequestError('unauthorized', `${what}: ${this.credentialsHint()}`, 401);
      }
      const text = await describeError(res);
      if (res.status === 401 || res.status === 403) throw new RegistryRequestError('unauthorized', `${what}: ${text}; ${this.credentialsHint()}`, res.status);
      if (res.status === 404) throw new RegistryRequestError('not-found', `${what}: ${text}`, 404);
      throw new RegistryRequestError('http', `${what}: ${text}`, res.status);
    }
  }

  private credentialsHint(): string {
    return this.opts.credentials === undefined
      ? 'authentication required and no registry credentials were given'
      : 'the registry refused the credentials given (wrong user name or password?)';
  }

  /** Answers a challenge; false when there is nothing more we could try. */
  private async authenticate(challenges: AuthChallenge[], scope: string, what: string): Promise<boolean> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer !== undefined) {
      if (this.tokens.has(scope) && (this.tokens.get(scope)?.expiresAtMs ?? 0) > Date.now()) return false; // token refused
      const token = await this.fetchToken(bearer, scope, what);
      this.tokens.set(scope, token);
      return true;
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic !== undefined && !this.basic && this.opts.credentials?.username !== undefined) {
      this.basic = true;
      return true;
    }
    return false;
  }

  private async fetchToken(ch: AuthChallenge, scope: string, what: string): Promise<Token> {
    const c = this.opts.credentials;
    if (c?.registrytoken !== undefined) return { value: c.registrytoken, expiresAtMs: Date.now() + TOKEN_DEFAULT_LIFETIME_S * 1000 };
    const realm = ch.params.realm;
    if (realm === undefined) throw new RegistryRequestError('bad-response', `${what}: Bearer challenge without a realm`);
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch (err) {
      throw new RegistryRequestError('bad-response', `${what}: Bearer realm ${JSON.stringify(realm)} is not a URL`, undefined, { cause: err });
    }
    const service = ch.params.service;
    const wantScope = ch.params.scope ?? scope;
    // Token responses are small: one deadline for the whole exchange is right here.
    const timeout = AbortSignal.timeout(this.opts.requestTimeoutMs);
    let res: Response;
    try {
      if (c?.identitytoken !== undefined) {
        // OAuth2 refresh-token grant, as Docker does with an identity token.
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: c.identitytoken, client_id: 'shoal', scope: wantScope });
        if (service !== undefined) form.set('service', service);
        res = await fetch(realmUrl, { method: 'POST', body: form, signal: timeout, headers: { 'user-agent': this.opts.userAgent } });
      } else {
        if (service !== undefined) realmUrl.searchParams.set('service', service);
        realmUrl.searchParams.set('scope', wantScope);
        const headers: Record<string, string> = { 'user-agent': this.opts.userAgent };
        if (c?.username !== undefined) {
          headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}`;
          realmUrl.searchParams.set('account', c.username);
        }
        res = await fetch(realmUrl, { headers, signal: timeout });
      }
    } catch (err) {
      throw new RegistryRequestError('unreachable', `${what}: token server ${realmUrl.origin} unreachable: ${causeText(err)}`, undefined, { cause: err });
    }
    if (res.status === 401 || res.status === 403) {
      throw new RegistryRequestError('unauthorized', `${what}: token server refused: ${await describeError(res)}; ${this.credentialsHint()}`, res.status);
    }
    if (!res.ok) throw new RegistryRequestError('http', `${what}: token server: ${await describeError(res)}`, res.status);
    const doc = JSON.parse((await readBodyLimited(res, ERROR_BODY_MAX_BYTES, this.opts.requestTimeoutMs)).toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const value = doc.token ?? doc.access_token;
    if (typeof value !== 'string' || value === '') throw new RegistryRequestError('bad-response', `${what}: token server answered without a token`);
    const lifetimeS = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : TOKEN_DEFAULT_LIFETIME_S;
    // Renew a little early so a token does not expire between check and use.
    return { value, expiresAtMs: Date.now() + Math.max(1, lifetimeS - 5) * 1000 };
  }

  /** Fetches a manifest by tag or digest; verifies the bytes when asked by digest. */
  async getManifest(ref: string): Promise<FetchedManifest> {
    const what = `manifest ${this.opts.repository}:${ref}`;
    const res = await this.get(this.url('manifests', ref), MANIFEST_ACCEPT, what);
    const body = await readBodyLimited(res, MANIFEST_MAX_BYTES, this.opts.requestTimeoutMs).catch((err: unknown) => {
      if (err instanceof RegistryRequestError) throw new RegistryRequestError(err.kind, `${what}: ${err.message}`);
      throw new RegistryRequestError('truncated', `${what}: body cut off: ${causeText(err)}`, undefined, { cause: err });
    });
    const digest = sha256Digest(body);
    if (ref.startsWith('sha256:') && digest !== ref) {
      throw new RegistryRequestError('digest-mismatch', `${what}: digest mismatch: received content has digest ${digest}`);
    }
    const header = res.headers.get('docker-content-digest');
    if (!ref.startsWith('sha256:') && header !== null && header.startsWith('sha256:') && header !== digest) {
      throw new RegistryRequestError('digest-mismatch', `${what}: digest mismatch: registry says ${header}, content has ${digest}`);
    }
    return { body, contentType: res.headers.get('content-type') ?? undefined, digest };
  }

  /** Starts a blob download; the caller streams and verifies the body. */
  async getBlob(digest: string): Promise<Response> {
    return this.get(this.url('blobs', digest), undefined, `blob ${digest}`);
  }

  /** Fetches a small blob (a config) whole, verifying its digest and size. */
  async getSmallBlob(digest: string, sizeBytes: number): Promise<Buffer> {
    const res = await this.getBlob(digest);
    const body = await readBodyLimited(res, sizeBytes, this.opts.requestTimeoutMs).catch((err: unknown) => {
      if (err instanceof RegistryRequestError && err.kind === 'bad-response') throw new RegistryRequestError('digest-mismatch', `blob ${digest}: digest mismatch: ${err.message}`);
      if (err instanceof RegistryRequestError) throw new RegistryRequestError(err.kind, `blob ${digest}: ${err.message}`);
      throw new RegistryRequestError('truncated', `blob ${digest}: body cut off: ${causeText(err)}`, undefined, { cause: err });
    });
    if (body.length < sizeBytes) throw new RegistryRequestError('truncated', `blob ${digest}: truncated: got ${body.length} of ${sizeBytes} bytes`);
    const got = sha256Digest(body);
    if (got !== digest) throw new RegistryRequestError('digest-mismatch', `blob ${digest}: digest mismatch: received content has digest ${got}`);
    this.opts.logger.debug({ digest, sizeBytes }, 'small blob fetched');
    return body;
  }
}
