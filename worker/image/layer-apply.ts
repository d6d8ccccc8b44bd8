// Applies one layer archive to an empty directory so that the directory can serve as an
// overlayfs lower layer: whiteouts (`.wh.NAME`) become 0/0 character devices and opaque markers
// (`.wh..wh..opq`) become the `trusted.overlay.opaque=y` xattr on their directory. Modes, owners,
// symlinks, hard links, device nodes, xattrs and mtimes are kept.
//
// Node has neither mknod nor setxattr, so those go through `mknod` (coreutils) and `setfattr`
// (Debian `attr`). Layers rarely hold more than a handful of either.
import { execFile } from 'node:child_process';
import { lchown, chmod, link, lstat, lutimes, mkdir, open, rm, symlink, utimes } from 'node:fs/promises';
import { posix, join } from 'node:path';
import { promisify } from 'node:util';
import { LayerFormatError } from './errors.js';
import { readTar, type TarHeader } from './tar-reader.js';

const execFileAsync = promisify(execFile);
const TOOL_TIMEOUT_MS = 30_000;
const SETFATTR_BATCH = 64;
const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
/** Other `.wh..wh.` names (AUFS hard-link bookkeeping) carry nothing for overlayfs. */
const AUFS_META_PREFIX = '.wh..wh.';
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

export interface ApplyStats {
  entries: number;
  whiteouts: number;
  opaqueDirs: number;
  fileBytes: number;
}

async function tool(cmd: string, args: readonly string[]): Promise<void> {
  try {
    await execFileAsync(cmd, args, { timeout: TOOL_TIMEOUT_MS });
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    const why = e.code === 'ENOENT' ? `${cmd} not found (install it: scripts/setup.sh)` : (e.stderr?.trim() || e.message);
    throw new LayerFormatError(`${cmd} ${args.join(' ')}: ${why}`, { cause: err });
  }
}

/** `a/./b/` → `a/b`; `..` that would leave the layer is refused; the root is ''. */
export function cleanEntryPath(name: string): string {
  const normalized = posix.normalize(name);
  const rel = normalized.replace(/^\/+/, '').replace(/\/+$/, '');
  if (rel === '..' || rel.startsWith('../')) throw new LayerFormatError(`tar entry ${JSON.stringify(name)} escapes the layer`);
  return rel === '.' ? '' : rel;
}

class LayerWriter {
  readonly stats: ApplyStats = { entries: 0, whiteouts: 0, opaqueDirs: 0, fileBytes: 0 };
  /** Paths (relative) known to be real directories made or checked in this layer. */
  private readonly knownDirs = new Set<string>(['']);
  private readonly dirTimes = new Map<string, number>();
  private readonly opaque = new Set<string>();

  constructor(private readonly root: string) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  /** Creates missing parents; refuses to go through a symlink or a non-directory. */
  private async ensureDir(rel: string): Promise<void> {
    if (this.knownDirs.has(rel)) return;
    const parent = posix.dirname(rel);
    await this.ensureDir(parent === '.' ? '' : parent);
    const st = await lstat(this.abs(rel)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (st === null) await mkdir(this.abs(rel), { mode: 0o755 });
    else if (!st.isDirectory()) throw new LayerFormatError(`layer path ${rel} is used as a directory but is not one`);
    this.knownDirs.add(rel);
  }

  /** Removes whatever an earlier entry of this layer put at rel. */
  private async clear(rel: string): Promise<void> {
    await rm(this.abs(rel), { recursive: true, force: true });
    for (const d of this.knownDirs) if (d === rel || d.startsWith(`${rel}/`)) this.knownDirs.delete(d);
    for (const d of this.dirTimes.keys()) if (d === rel || d.startsWith(`${rel}/`)) this.dirTimes.delete(d);
  }

  private async ownAndMode(path: string, h: TarHeader, isSymlink: boolean): Promise<void> {
    await lchown(path, h.uid, h.gid);
    // chmod after chown: chown clears setuid/setgid bits.
    if (!isSymlink) await chmod(path, h.mode);
    for (const [key, value] of h.xattrs) {
      if (key.startsWith(OVERLAY_XATTR_PREFIX)) continue; // a layer must not steer overlayfs itself
      await tool('setfattr', ['-h', '-n', key, '-v', `0x${value.toString('hex')}`, path]);
    }
  }

  async apply(h: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    this.stats.entries++;
    const rel = cleanEntryPath(h.path);
    const parentRel = rel.includes('/') ? posix.dirname(rel) : '';
    const base = posix.basename(rel);

    if (base === OPAQUE_MARKER) {
      await this.ensureDir(parentRel);
      this.opaque.add(parentRel);
      this.stats.opaqueDirs++;
      return;
    }
    if (base.startsWith(AUFS_META_PREFIX)) return;
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const hidden = posix.join(parentRel, base.slice(WHITEOUT_PREFIX.length));
      if (cleanEntryPath(hidden) !== hidden || hidden === parentRel) throw new LayerFormatError(`bad whiteout ${h.path}`);
      await this.ensureDir(parentRel);
      await this.clear(hidden);
      await tool('mknod', ['-m', '0', this.abs(hidden), 'c', '0', '0']);
      this.stats.whiteouts++;
      return;
    }

    if (h.type === 'directory') {
      if (rel !== '' && !this.knownDirs.has(rel)) {
        const st = await lstat(this.abs(rel)).catch(() => null);
        if (st !== null && !st.isDirectory()) await this.clear(rel);
      }
      await this.ensureDir(rel);
      await this.ownAndMode(this.abs(rel), h, false);
      this.dirTimes.set(rel, h.mtime);
      return;
    }
    if (rel === '') throw new LayerFormatError(`tar entry ${JSON.stringify(h.path)} replaces the layer root with a ${h.type}`);
    await this.ensureDir(parentRel);
    await this.clear(rel);
    const path = this.abs(rel);
    switch (h.type) {
      case 'file': {
        const fh = await open(path, 'wx', 0o600);
        try {
          for await (const chunk of body) {
            await fh.write(chunk);
            this.stats.fileBytes += chunk.length;
          }
        } finally {
          await fh.close();
        }
        await this.ownAndMode(path, h, false);
        await utimes(path, h.mtime, h.mtime);
        return;
      }
      case 'hardlink': {
        const target = cleanEntryPath(h.linkPath);
        if (target === '') throw new LayerFormatError(`hard link ${h.path} points at the layer root`);
        // The target must be an earlier entry of this same archive, not through a symlink.
        await this.ensureDir(target.includes('/') ? posix.dirname(target) : '');
        await link(this.abs(target), path).catch((e: NodeJS.ErrnoException) => {
          throw new LayerFormatError(`hard link ${h.path} → ${h.linkPath}: ${e.code ?? e.message}`, { cause: e });
        });
        return;
      }
      case 'symlink':
        await symlink(h.linkPath, path);
        await this.ownAndMode(path, h, true);
        await lutimes(path, h.mtime, h.mtime);
        return;
      case 'chardev':
      case 'blockdev':
      case 'fifo': {
        const args = h.type === 'fifo' ? [path, 'p'] : [path, h.type === 'chardev' ? 'c' : 'b', String(h.devMajor), String(h.devMinor)];
        await tool('mknod', args);
        await this.ownAndMode(path, h, false);
        await utimes(path, h.mtime, h.mtime);
        return;
      }
    }
  }

  /** Opaque markers and directory times go last: writing children changes a directory's mtime. */
  async finish(): Promise<void> {
    const dirs = [...this.opaque].map((d) => this.abs(d));
    for (let i = 0; i < dirs.length; i += SETFATTR_BATCH) {
      await tool('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', ...dirs.slice(i, i + SETFATTR_BATCH)]);
    }
    for (const [rel, mtime] of this.dirTimes) await utimes(this.abs(rel), mtime, mtime);
  }
}

/** Unpacks the (uncompressed) tar stream `source` into `root`, which must exist and be empty. */
export async function applyLayer(source: AsyncIterable<Buffer>, root: string): Promise<ApplyStats> {
  const writer = new LayerWriter(root);
  for await (const entry of readTar(source)) await writer.apply(entry.header, entry.body);
  await writer.finish();
  return writer.stats;
}
