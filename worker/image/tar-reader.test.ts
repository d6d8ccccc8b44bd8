import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile, link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTar } from '../testing/registry.js';
import { LayerFormatError } from './errors.js';
import { readTar, type TarHeader } from './tar-reader.js';

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function readAll(data: Buffer, chunkBytes = 700): Promise<{ header: TarHeader; content: string }[]> {
  const out: { header: TarHeader; content: string }[] = [];
  for await (const e of readTar(chunked(data, chunkBytes))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({ header: e.header, content: Buffer.concat(parts).toString('utf8') });
  }
  return out;
}

describe('tar reader', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('reads ustar entries, PAX long names and link targets whatever the chunking', async () => {
    const longName = `deep/${'n'.repeat(150)}/file.txt`;
    const longTarget = `/${'t'.repeat(140)}`;
    const tar = buildTar([
      { type: 'dir', path: 'deep', mode: 0o750, uid: 7, gid: 8, mtime: 1234567 },
      { type: 'file', path: longName, content: 'x'.repeat(1000), mode: 0o4755, uid: 1000, gid: 100 },
      { type: 'symlink', path: 'deep/s', target: longTarget },
      { type: 'hardlink', path: 'deep/h', target: longName },
    ]);
    for (const chunkBytes of [1, 511, 512, 4096, tar.length]) {
      const entries = await readAll(tar, chunkBytes);
      expect(entries.map((e) => [e.header.type, e.header.path])).toEqual([
        ['directory', 'deep/'],
        ['file', longName],
        ['symlink', 'deep/s'],
        ['hardlink', 'deep/h'],
      ]);
      expect(entries[0]?.header).toMatchObject({ mode: 0o750, uid: 7, gid: 8, mtime: 1234567 });
      expect(entries[1]?.header).toMatchObject({ mode: 0o4755, uid: 1000, gid: 100, sizeBytes: 1000 });
      expect(entries[1]?.content).toBe('x'.repeat(1000));
      expect(entries[2]?.header.linkPath).toBe(longTarget);
      expect(entries[3]?.header.linkPath).toBe(longName);
    }
  });

  it('reads what GNU tar writes (long names, hard links, symlinks, fifos, xattrs)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-tar-'));
    dirs.push(dir);
    const src = join(dir, 'src');
    const longDir = join(src, 'a'.repeat(120));
    await mkdir(longDir, { recursive: true });
    await writeFile(join(longDir, 'f'), 'hello');
    await link(join(longDir, 'f'), join(src, 'hard'));
    await symlink('a/b/c', join(src, 'sym'));
    execFileSync('mkfifo', [join(src, 'fifo')]);
    execFileSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(src, 'hard')]);
    for (const format of ['gnu', 'posix']) {
      const tar = execFileSync('tar', ['--format', format, '--xattrs', '--xattrs-include=*', '-C', src, '-cf', '-', '.']);
      const entries = await readAll(tar);
      const byPath = new Map(entries.map((e) => [e.header.path.replace(/^\.\//, ''), e]));
      expect(byPath.get(`${'a'.repeat(120)}/f`)?.content, format).toBe('hello');
      expect(byPath.get('sym')?.header).toMatchObject({ type: 'symlink', linkPath: 'a/b/c' });
      expect(byPath.get('fifo')?.header.type).toBe('fifo');
      // tar stores the second name of a hard-linked file as a link to the first.
      const linked = [byPath.get('hard'), byPath.get(`${'a'.repeat(120)}/f`)].map((e) => e?.header.type).sort();
      expect(linked).toEqual(['file', 'hardlink']);
      if (format === 'posix') {
        const withXattr = [...byPath.values()].find((e) => e.header.xattrs.size > 0);
        expect(withXattr?.header.xattrs.get('user.note')?.toString()).toBe('kept');
      }
    }
  });

  it('refuses a corrupt header and a truncated entry', async () => {
    const tar = buildTar([{ type: 'file', path: 'f', content: 'abc' }]);
    const corrupt = Buffer.from(tar);
    corrupt[10] = 0x41;
    await expect(readAll(corrupt)).rejects.toThrow(/checksum mismatch/);
    const big = buildTar([{ type: 'file', path: 'f', content: 'z'.repeat(5000) }]);
    await expect(readAll(big.subarray(0, 2048))).rejects.toBeInstanceOf(LayerFormatError);
  });

  it('skips unread bodies and consumes trailing bytes after the end blocks', async () => {
    const tar = Buffer.concat([buildTar([{ type: 'file', path: 'a', content: 'A'.repeat(3000) }, { type: 'file', path: 'b', content: 'B' }]), Buffer.alloc(10240)]);
    const seen: string[] = [];
    let consumed = 0;
    async function* counting(): AsyncGenerator<Buffer> {
      for await (const c of chunked(tar, 1000)) {
        consumed += c.length;
        yield c;
      }
    }
    for await (const e of readTar(counting())) seen.push(e.header.path);
    expect(seen).toEqual(['a', 'b']);
    expect(consumed).toBe(tar.length);
  });
});
