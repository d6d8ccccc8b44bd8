// Registry credentials as Docker passes them (`X-Registry-Auth`: base64url of a JSON
// AuthConfig) and the `WWW-Authenticate` challenges registries answer with.

export interface RegistryCredentials {
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** The registry these are for, as the client wrote it; informational. */
  readonly serveraddress?: string | undefined;
  /** An OAuth refresh token (Docker's `identitytoken`). */
  readonly identitytoken?: string | undefined;
  /** A bearer token to send as is (Docker's `registrytoken`). */
  readonly registrytoken?: string | undefined;
}

export class RegistryAuthHeaderError extends Error {
  override readonly name = 'RegistryAuthHeaderError';
  readonly code = 'ERR_IMAGE_BAD_AUTH_HEADER';
}

/**
 * Decodes an `X-Registry-Auth` value. Docker clients send base64url JSON
 * `{username, password, serveraddress}`; standard base64 and an `auth` field
 * (base64 of `user:password`, as in config.json) are accepted too. Empty → undefined.
 */
export function decodeRegistryAuth(header: string | undefined): RegistryCredentials | undefined {
  if (header === undefined || header.trim() === '' || header.trim() === '{}') return undefined;
  let doc: Record<string, unknown>;
  try {
    const json = Buffer.from(header.trim().replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
    doc = JSON.parse(json) as Record<string, unknown>;
  } catch (err) {
    throw new RegistryAuthHeaderError('X-Registry-Auth is not base64url-encoded JSON', { cause: err });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RegistryAuthHeaderError('X-Registry-Auth is not a JSON object');
  const s = (k: string): string | undefined => {
    const v = doc[k];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new RegistryAuthHeaderError(`X-Registry-Auth field ${k} is not a string`);
    return v;
  };
  let username = s('username');
  let password = s('password');
  const auth = s('auth');
  if (auth !== undefined && username === undefined) {
    const plain = Buffer.from(auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon < 0) throw new RegistryAuthHeaderError('X-Registry-Auth field auth is not base64 of user:password');
    username = plain.slice(0, colon);
    password = plain.slice(colon + 1);
  }
  const creds: RegistryCredentials = {
    username,
    password,
    serveraddress: s('serveraddress'),
    identitytoken: s('identitytoken'),
    registrytoken: s('registrytoken'),
  };
  return Object.values(creds).some((v) => v !== undefined) ? creds : undefined;
}

/** The inverse, for clients and tests: base64url JSON as the docker CLI sends it. */
export function encodeRegistryAuth(creds: RegistryCredentials): string {
  return Buffer.from(JSON.stringify(creds), 'utf8').toString('base64url');
}

export interface AuthChallenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parses `Bearer realm="https://auth",service="reg",scope="repository:x:pull"` (one or more challenges). */
export function parseChallenges(header: string | null): AuthChallenge[] {
  if (header === null) return [];
  const out: { scheme: string; params: Record<string, string> }[] = [];
  const re = /\s*([A-Za-z][\w.-]*)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?\s*,?/gy;
  let current: { scheme: string; params: Record<string, string> } | undefined;
  let m: RegExpExecArray | null;
  let guard = 0;
  while (re.lastIndex < header.length && (m = re.exec(header)) !== null && guard++ < 256) {
    const [, key, value] = m as unknown as [string, string, string | undefined];
    if (value === undefined) {
      // A bare token starts a new challenge (the scheme); a following key=value belongs to it.
      current = { scheme: key.toLowerCase(), params: {} };
      out.push(current);
      // Schemes are followed by a space, not a comma: step over a param directly after it.
      continue;
    }
    const unquoted = value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
    if (current !== undefined) current.params[key.toLowerCase()] = unquoted;
  }
  return out;
}
