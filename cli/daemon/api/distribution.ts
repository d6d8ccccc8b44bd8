// `GET /distribution/{image}/json`: what the docker CLI asks before `service create|update` and
// `stack deploy` to pin an image to its digest (docker-api.md §2.12). shoald asks the registry for
// the manifest (Docker Hub images through the daemon's `--registry-mirror`s first, other
// registries over HTTP when listed in `--insecure-registry` or on loopback) and answers dockerd's
// shape: `{"Descriptor":{mediaType,digest,size},"Platforms":[{architecture,os,…}]}`. For a single
// image manifest the platform comes from its config blob, as dockerd does.
// Any failure is an error status: the docker CLI then warns and creates the service unpinned; it
// never gets a made-up digest.
import type { Logger } from 'pino';
import { decodeRegistryAuth, InvalidReferenceError, parseReference, type RegistryCredentials } from '../../../worker/image/index.js';
import { parseManifest, type Manifest } from '../../../worker/image/manifest.js';
import { RegistryClient, RegistryRequestError, type Endpoint } from '../../../worker/image/registry-client.js';
import { ApiError, InvalidArgumentError, NotFoundError } from './errors.js';
import { reply, type ApiServer } from './server.js';

const DOCKER_HUB_DOMAIN = 'docker.io';
const DOCKER_HUB_ENDPOINT = 'https://registry-1.docker.io';
const REQUEST_TIMEOUT_MS = 15_000;
const USER_AGENT = 'shoal/0.1 (distribution)';

export interface DistributionOptions {
  readonly registryMirrors: readonly string[];
  readonly insecureRegistries: readonly string[];
  readonly logger: Logger;
  /** Whether Docker Hub itself is asked after the mirrors (default true). */
  readonly dockerHubFallback?: boolean;
}

export interface DistributionInspect {
  readonly Descriptor: { readonly mediaType: string; readonly digest: string; readonly size: number };
  readonly Platforms: readonly { readonly architecture: string; readonly os: string; readonly variant?: string }[];
}

function hostOf(domain: string): string {
  if (domain.startsWith('[')) return domain.slice(1, domain.indexOf(']'));
  const i = domain.lastIndexOf(':');
  return i < 0 ? domain : domain.slice(0, i);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The endpoints to ask for a reference's domain, in order. */
export function endpointsFor(domain: string, opts: Pick<DistributionOptions, 'registryMirrors' | 'insecureRegistries' | 'dockerHubFallback'>): Endpoint[] {
  if (domain === DOCKER_HUB_DOMAIN) {
    const mirrors = opts.registryMirrors.map((m) => ({ baseUrl: m.replace(/\/+$/, ''), mirror: true }));
    return [...mirrors, ...(opts.dockerHubFallback === false ? [] : [{ baseUrl: DOCKER_HUB_ENDPOINT, mirror: false }])];
  }
  const insecure = isLoopback(hostOf(domain)) || opts.insecureRegistries.some((r) => r === domain || r === hostOf(domain));
  return [{ baseUrl: `${insecure ? 'http' : 'https'}://${domain}`, mirror: false }];
}

/** Platforms of an image config blob (`architecture`, `os`, `variant`). */
function configPlatform(raw: Buffer): { architecture: string; os: string; variant?: string } {
  const doc = JSON.parse(raw.toString('utf8')) as { architecture?: unknown; os?: unknown; variant?: unknown };
  return {
    architecture: typeof doc.architecture === 'string' ? doc.architecture : '',
    os: typeof doc.os === 'string' ? doc.os : '',
    ...(typeof doc.variant === 'string' && doc.variant !== '' ? { variant: doc.variant } : {}),
  };
}

async function inspectAt(client: RegistryClient, ref: string): Promise<DistributionInspect> {
  const fetched = await client.getManifest(ref);
  let manifest: Manifest;
  try {
    manifest = parseManifest(fetched.body, fetched.contentType);
  } catch (err) {
    throw new RegistryRequestError('bad-response', `bad manifest: ${(err as Error).message}`, undefined, { cause: err });
  }
  const descriptor = { mediaType: manifest.mediaType || (fetched.contentType?.split(';')[0] ?? ''), digest: fetched.digest, size: fetched.body.length };
  if (manifest.kind === 'index') {
    const platforms = manifest.manifests
      .filter((m) => m.platform !== undefined && m.platform.os !== 'unknown')
      .map((m) => ({ architecture: m.platform!.architecture, os: m.platform!.os, ...(m.platform!.variant !== undefined ? { variant: m.platform!.variant } : {}) }));
    return { Descriptor: descriptor, Platforms: platforms };
  }
  const config = await client.getSmallBlob(manifest.config.digest, manifest.config.size);
  return { Descriptor: descriptor, Platforms: [configPlatform(config)] };
}

/** Asks the registries for `image`'s manifest; throws ApiErrors with Docker's statuses. */
export async function inspectDistribution(image: string, credentials: RegistryCredentials | undefined, opts: DistributionOptions): Promise<DistributionInspect> {
  let parsed;
  try {
    parsed = parseReference(image);
  } catch (err) {
    if (err instanceof InvalidReferenceError) throw new InvalidArgumentError(err.message);
    throw err;
  }
  const endpoints = endpointsFor(parsed.domain, opts);
  let last: unknown = new NotFoundError(`no registry endpoint for ${image}`);
  for (const endpoint of endpoints) {
    const client = new RegistryClient({ endpoint, repository: parsed.path, credentials, logger: opts.logger, requestTimeoutMs: REQUEST_TIMEOUT_MS, userAgent: USER_AGENT });
    try {
      return await inspectAt(client, parsed.digest ?? parsed.tag ?? 'latest');
    } catch (err) {
      last = err;
      opts.logger.debug({ image, endpoint: endpoint.baseUrl, err: (err as Error).message }, 'distribution inspect failed at this endpoint');
    }
  }
  if (last instanceof RegistryRequestError) {
    const status = last.kind === 'not-found' ? 404 : last.kind === 'unauthorized' ? 401 : 500;
    const code = status === 404 ? 'ERR_NOT_FOUND' : status === 401 ? 'ERR_FORBIDDEN' : 'ERR_INTERNAL';
    throw new ApiError(status, code, `${status === 404 ? 'manifest unknown' : 'registry error'}: ${last.message}`);
  }
  throw last;
}

/** Registers the route on the daemon's API. */
export function registerDistributionRoutes(api: ApiServer, opts: DistributionOptions): void {
  api.route('GET', '/distribution/{name*}/json', async (req) => {
    const image = req.params['name'] ?? '';
    let credentials: RegistryCredentials | undefined;
    try {
      // dockerode puts the spec itself into X-Registry-Auth; an unreadable header means anonymous.
      const header = req.headers['x-registry-auth'];
      credentials = decodeRegistryAuth(typeof header === 'string' ? header : undefined);
      if (credentials !== undefined && credentials.username === undefined && credentials.identitytoken === undefined && credentials.registrytoken === undefined) credentials = undefined;
    } catch {
      credentials = undefined;
    }
    return reply.json(await inspectDistribution(image, credentials, opts));
  });
}
