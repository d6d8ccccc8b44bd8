// Name and image-reference rules, as swarmkit's control API has them.
import { invalid } from './errors.js';

/** Services, networks, nodes' labels aside: a DNS label (swarmkit's isValidDNSName), ≤ 63 characters. */
const DNS_NAME = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/;
export const MAX_DNS_NAME_CHARS = 63;
/** Secrets and configs (swarmkit's isValidConfigOrSecretName), ≤ 64 characters. */
const SECRET_NAME = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/;
export const MAX_SECRET_NAME_CHARS = 64;

export type NamedKind = 'service' | 'network' | 'secret' | 'config' | 'cluster';

/** Throws InvalidArgument with swarmkit's text first, then what exactly was wrong. */
export function checkName(kind: NamedKind, name: unknown): string {
  if (name === undefined || name === null || name === '') throw invalid(`meta: name must be provided (the ${kind} spec has no Name)`);
  if (typeof name !== 'string') throw invalid(`${kind} Name must be a string, got ${typeof name}`);
  if (kind === 'secret' || kind === 'config') {
    if (name.length > MAX_SECRET_NAME_CHARS || !SECRET_NAME.test(name)) {
      throw invalid(
        `invalid name, only ${MAX_SECRET_NAME_CHARS} [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9] (${kind} name ${JSON.stringify(name)})`,
      );
    }
    return name;
  }
  if (!DNS_NAME.test(name)) {
    throw invalid(
      `name must be valid as a DNS name component (${kind} name ${JSON.stringify(name)}: letters, digits, '-' and '_', starting and ending with a letter or digit)`,
    );
  }
  if (name.length > MAX_DNS_NAME_CHARS) throw invalid(`name must be ${MAX_DNS_NAME_CHARS} characters or fewer (${kind} name has ${name.length})`);
  return name;
}

// Docker's reference grammar (distribution/reference), reduced to what a check needs:
//   [domain[:port]/]path-component(/path-component)*[:tag][@digest]
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*';
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';
const REFERENCE = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`);
const MAX_REFERENCE_NAME_CHARS = 255;

export function isValidImageReference(image: string): boolean {
  const name = image.split(/[:@]/)[0] ?? '';
  return REFERENCE.test(image) && name.length <= MAX_REFERENCE_NAME_CHARS;
}
