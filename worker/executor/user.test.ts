// User and group resolution against an image's /etc/passwd and /etc/group, as Docker resolves them.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveInRoot, resolveUser, UserLookupError } from './user.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'shoal-user-'));
  await mkdir(join(root, 'etc'));
  await mkdir(join(root, 'data'));
  await writeFile(join(root, 'data', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n# comment\nweb:x:33:33:www:/var/www:/bin/false\nbroken-line\nbob:x:1001:100::/home/bob:/bin/sh\n');
  // An absolute symlink must resolve inside the root, never to the host's /etc/passwd.
  await symlink('/data/passwd', join(root, 'etc', 'passwd'));
  await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nusers:x:100:\nwww-data:x:33:\nadm:x:4:bob,web\ndocker:x:999:bob\n');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resolveUser', () => {
  it('defaults to root', async () => {
    expect(await resolveUser(root, '')).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/root' });
  });
  it('resolves a name with its primary group and memberships', async () => {
    expect(await resolveUser(root, 'bob')).toEqual({ uid: 1001, gid: 100, additionalGids: [4, 999], home: '/home/bob' });
    expect(await resolveUser(root, 'web')).toEqual({ uid: 33, gid: 33, additionalGids: [4], home: '/var/www' });
  });
  it('takes numbers as they are; a uid not in passwd gets gid 0', async () => {
    expect(await resolveUser(root, '1001')).toMatchObject({ uid: 1001, gid: 100 });
    expect(await resolveUser(root, '5000')).toEqual({ uid: 5000, gid: 0, additionalGids: [], home: '/' });
    expect(await resolveUser(root, '5000:6000')).toEqual({ uid: 5000, gid: 6000, additionalGids: [], home: '/' });
  });
  it('user:group sets the group and drops memberships; Groups adds supplementary groups', async () => {
    expect(await resolveUser(root, 'bob:docker')).toEqual({ uid: 1001, gid: 999, additionalGids: [], home: '/home/bob' });
    expect(await resolveUser(root, 'web', ['docker', '7'])).toMatchObject({ additionalGids: [4, 7, 999] });
  });
  it('refuses unknown names', async () => {
    await expect(resolveUser(root, 'ghost')).rejects.toThrow(UserLookupError);
    await expect(resolveUser(root, 'bob:nogroup')).rejects.toThrow(/unable to find group nogroup/);
  });
  it('an image without passwd still runs numeric users', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'shoal-user-empty-'));
    try {
      expect(await resolveUser(empty, '12:34')).toEqual({ uid: 12, gid: 34, additionalGids: [], home: '/' });
      await expect(resolveUser(empty, 'bob')).rejects.toThrow(UserLookupError);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe('resolveInRoot', () => {
  it('keeps .. and absolute symlinks inside the root', async () => {
    await symlink('../../../../etc', join(root, 'escape'));
    expect(await resolveInRoot(root, '/escape/shadow')).toBe(join(root, 'etc', 'shadow'));
    expect(await resolveInRoot(root, '/../../etc/passwd')).toBe(join(root, 'data', 'passwd'));
  });
});
