// Image references parsed the way Docker parses them (distribution's reference grammar plus
// Docker Hub's defaults): `busybox` is docker.io/library/busybox:latest.
import { InvalidReferenceError } from './errors.js';

export const DOCKER_HUB_DOMAIN = 'docker.io';
const LEGACY_HUB_DOMAIN = 'index.docker.io';
export const DEFAULT_TAG = 'latest';
const NAME_TOTAL_LENGTH_MAX = 255;

export interface ImageReference {
  /** Registry host with optional port, e.g. `docker.io`, `localhost:5000`. */
  readonly domain: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  readonly path: string;
  /** Tag; undefined when pulled by digest alone. */
  readonly tag: string | undefined;
  /** `sha256:<hex>` when pinned. */
  readonly digest: string | undefined;
  /** What the user wrote. */
  readonly original: string;
}

// One label of a host name, or an IPv6 literal in brackets; optional port.
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PORT = /^[0-9]+$/;
const IPV6 = /^\[[a-fA-F0-9:]+\]$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}$/;
const SHA256_HEX = /^[a-f0-9]{64}$/;

function validDomain(domain: string): boolean {
  let host = domain;
  const portAt = domain.lastIndexOf(':');
  if (portAt > domain.lastIndexOf(']')) {
    if (!PORT.test(domain.slice(portAt + 1))) return false;
    host = domain.slice(0, portAt);
  }
  if (IPV6.test(host)) return true;
  return host.length > 0 && host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** Parses and normalizes `ref`; throws InvalidReferenceError with the reason when malformed. */
export function parseReference(ref: string): ImageReference {
  const bad = (reason: string): never => {
    throw new InvalidReferenceError(ref, reason);
  };
  if (ref.length === 0) bad('empty reference');
  if (ref.trim() !== ref) bad('contains white space');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad(`malformed digest ${JSON.stringify(digest)}`);
    const [algo, hex] = digest.split(':') as [string, string];
    if (algo !== 'sha256') bad(`unsupported digest algorithm ${JSON.stringify(algo)}`);
    if (!SHA256_HEX.test(hex)) bad('sha256 digest must be 64 lowercase hex characters');
  }
  let tag: string | undefined;
  // A colon after the last slash separates the tag; a colon before it is a registry port.
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`malformed tag ${JSON.stringify(tag)}`);
  }
  if (rest.length === 0) bad('missing repository name');

  let domain = DOCKER_HUB_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first) {
      domain = first;
      path = rest.slice(slash + 1);
      if (!validDomain(domain)) bad(`malformed registry host ${JSON.stringify(domain)}`);
    }
  }
  if (domain === LEGACY_HUB_DOMAIN) domain = DOCKER_HUB_DOMAIN;
  if (path.length === 0) bad('missing repository name');
  if (path.toLowerCase() !== path) bad('repository name must be lowercase');
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) bad(`malformed repository path component ${JSON.stringify(component)}`);
  }
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;
  if (domain.length + 1 + path.length > NAME_TOTAL_LENGTH_MAX) bad(`repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { domain, path, tag, digest, original: ref };
}

/** `docker.io/library/busybox:latest`, `host:5000/app@sha256:…`. */
export function canonicalReference(ref: ImageReference): string {
  let s = `${ref.domain}/${ref.path}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** Repository name without tag or digest: `docker.io/library/busybox`. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** Docker's short form: `busybox:latest`, `localhost:5000/x:tag`. */
export function familiarReference(ref: ImageReference): string {
  let name = `${ref.domain}/${ref.path}`;
  if (ref.domain === DOCKER_HUB_DOMAIN) name = ref.path.startsWith('library/') ? ref.path.slice(8) : ref.path;
  if (ref.tag !== undefined) name += `:${ref.tag}`;
  if (ref.digest !== undefined) name += `@${ref.digest}`;
  return name;
}
