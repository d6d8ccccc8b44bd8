// Resolves the spec's User (and Groups) against the image's /etc/passwd and /etc/group, as Docker
// does: names are looked up, numbers are taken as they are (a uid not in passwd gets gid 0), a user's
// supplementary groups are the /etc/group entries that list it. Files are read inside the root
// without following symlinks out of it.
import { lstat, readFile, readlink } from 'node:fs/promises';
import { posix } from 'node:path';

export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids: readonly number[];
  /** From passwd, `/` when unknown. */
  readonly home: string;
}

export class UserLookupError extends Error {
  override readonly name = 'UserLookupError';
  readonly code = 'ERR_USER_LOOKUP';
}

interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

const MAX_SYMLINKS = 40;
const MAX_ID = 2 ** 31 - 1;

/** Maps `path` (absolute, in the container) to a host path under `root`, resolving symlinks as chroot would. */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  const parts = posix.normalize(`/${path}`).split('/').filter((p) => p !== '');
  const resolved: string[] = [];
  let links = 0;
  while (parts.length > 0) {
    const part = parts.shift() as string;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const host = posix.join(root, ...resolved, part);
    const st = await lstat(host).catch(() => undefined);
    if (st?.isSymbolicLink() === true) {
      if (++links > MAX_SYMLINKS) throw new UserLookupError(`too many symlinks resolving ${path}`);
      const target = await readlink(host);
      if (target.startsWith('/')) resolved.length = 0;
      parts.unshift(...target.split('/').filter((p) => p !== ''));
      continue;
    }
    resolved.push(part);
  }
  return posix.join(root, ...resolved);
}

async function readInRoot(root: string, path: string): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  return readFile(host, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw err;
  });
}

function parseId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    if (f[0] === undefined || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] !== undefined && f[5] !== '' ? f[5] : '/' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const gid = parseId(f[2] ?? '');
    if (f[0] === undefined || gid === undefined) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '') });
  }
  return out;
}

/** Pure resolution over parsed files; see resolveUser. */
export function resolveUserFrom(user: string, groups: readonly string[], passwd: readonly PasswdEntry[], group: readonly GroupEntry[]): ResolvedUser {
  const [userPart = '', groupPart] = user.split(':', 2) as [string?, string?];
  let uid = 0;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  if (userPart === '') {
    const root = passwd.find((p) => p.uid === 0);
    if (root !== undefined) {
      gid = root.gid;
      home = root.home;
      name = root.name;
    }
  } else {
    const numeric = parseId(userPart);
    const entry = numeric !== undefined ? passwd.find((p) => p.uid === numeric) : passwd.find((p) => p.name === userPart);
    if (entry === undefined && numeric === undefined) throw new UserLookupError(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = entry?.uid ?? (numeric as number);
    gid = entry?.gid ?? 0;
    home = entry?.home ?? '/';
    name = entry?.name;
  }
  const lookupGroup = (g: string): number => {
    const numeric = parseId(g);
    if (numeric !== undefined) return numeric;
    const entry = group.find((e) => e.name === g);
    if (entry === undefined) throw new UserLookupError(`unable to find group ${g}: no matching entries in group file`);
    return entry.gid;
  };
  if (groupPart !== undefined && groupPart !== '') gid = lookupGroup(groupPart);
  const additional = new Set<number>();
  if (name !== undefined && (groupPart === undefined || groupPart === '')) {
    for (const g of group) if (g.members.includes(name) && g.gid !== gid) additional.add(g.gid);
  }
  for (const g of groups) additional.add(lookupGroup(g));
  return { uid, gid, additionalGids: [...additional].sort((a, b) => a - b), home };
}

/** Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`, '' = root) in the image mounted at `rootfs`. */
export async function resolveUser(rootfs: string, user: string, groups: readonly string[] = []): Promise<ResolvedUser> {
  const [passwdText, groupText] = await Promise.all([readInRoot(rootfs, '/etc/passwd'), readInRoot(rootfs, '/etc/group')]);
  return resolveUserFrom(user, groups, parsePasswd(passwdText ?? ''), parseGroup(groupText ?? ''));
}
