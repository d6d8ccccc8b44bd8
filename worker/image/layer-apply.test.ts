// The layer applier on its own, for archive shapes the registry tests do not push.
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTar } from '../testing/registry.js';
import { LayerFormatError } from './errors.js';
import { applyLayer, cleanEntryPath } from './layer-apply.js';
import { Cleanup } from './store-test-support.js';

const cleanup = new Cleanup();
afterEach(async () => {
  await cleanup.run();
});

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

async function applied(tar: Buffer): Promise<string> {
  const root = join(await cleanup.tempDir('layer'), 'fs');
  await mkdir(root);
  await applyLayer(once(tar), root);
  return root;
}

describe('applying a layer archive', () => {
  it('lets a later entry for the same path win, whatever was there', async () => {
    const root = await applied(
      buildTar([
        { type: 'file', path: 'a', content: 'first' },
        { type: 'file', path: 'a', content: 'second' },
        { type: 'dir', path: 'd' },
        { type: 'file', path: 'd/x', content: 'x' },
        { type: 'file', path: 'd', content: 'now a file' },
        { type: 'symlink', path: 's', target: 'a' },
        { type: 'dir', path: 's' },
      ]),
    );
    expect(await readFile(join(root, 'a'), 'utf8')).toBe('second');
    expect(await readFile(join(root, 'd'), 'utf8')).toBe('now a file');
    expect((await lstat(join(root, 's'))).isDirectory()).toBe(true);
  });

  it('turns a whiteout into a 0/0 char device even over an earlier entry of the same layer', async () => {
    const root = await applied(buildTar([{ type: 'dir', path: 'x' }, { type: 'file', path: 'x/f', content: 'f' }, { type: 'file', path: 'x/.wh.f', content: '' }]));
    const st = await lstat(join(root, 'x/f'));
    expect([st.isCharacterDevice(), st.rdev]).toEqual([true, 0]);
    expect(await readdir(join(root, 'x'))).toEqual(['f']);
  });

  it('marks an opaque directory even when the marker comes before the directory entry', async () => {
    const root = await applied(buildTar([{ type: 'file', path: 'o/.wh..wh..opq', content: '' }, { type: 'dir', path: 'o', mode: 0o711, mtime: 1_234_567_890 }]));
    expect(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', join(root, 'o')], { encoding: 'utf8' })).toBe('y');
    const st = await stat(join(root, 'o'));
    expect([st.mode & 0o7777, st.mtimeMs / 1000]).toEqual([0o711, 1_234_567_890]);
  });

  it('keeps xattrs from PAX records but never trusted.overlay.* from the archive', async () => {
    const src = await cleanup.tempDir('xattr-src');
    execFileSync('sh', ['-c', 'echo hi > f && setfattr -n user.colour -v blue f && setfattr -n trusted.overlay.opaque -v y .', 'sh'], { cwd: src });
    const tar = execFileSync('tar', ['--format', 'posix', '--xattrs', '--xattrs-include=*', '-C', src, '-cf', '-', '.']);
    const root = await applied(tar);
    expect(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'user.colour', join(root, 'f')], { encoding: 'utf8' })).toBe('blue');
    expect(() => execFileSync('getfattr', ['--absolute-names', '-n', 'trusted.overlay.opaque', root], { stdio: 'pipe' })).toThrow();
  });

  it('refuses a hard link to an entry the layer does not have', async () => {
    await expect(applied(buildTar([{ type: 'hardlink', path: 'h', target: 'missing' }]))).rejects.toThrow(/hard link h → missing: ENOENT/);
  });

  it('cleans entry paths and refuses ones leaving the layer', () => {
    expect(cleanEntryPath('./a//b/./c/')).toBe('a/b/c');
    expect(cleanEntryPath('/abs/path')).toBe('abs/path');
    expect(cleanEntryPath('./')).toBe('');
    expect(cleanEntryPath('a/../b')).toBe('b');
    expect(() => cleanEntryPath('a/../../b')).toThrow(LayerFormatError);
  });
});
