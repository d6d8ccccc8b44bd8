// Shared set-up for the image store's tests: temp dirs and mounts that are undone after each
// test, also when it fails, and a listing of a store's files to prove a failed pull left nothing.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ImageStore, type ImageStoreOptions } from './store.js';

export class Cleanup {
  private readonly tasks: (() => Promise<void>)[] = [];
  private readonly dirs: string[] = [];

  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `shoal-${prefix}-`));
    this.dirs.push(dir);
    return dir;
  }

  defer(task: () => Promise<void>): void {
    this.tasks.push(task);
  }

  async store(options: Partial<ImageStoreOptions> = {}): Promise<ImageStore> {
    const root = await this.tempDir('images');
    return ImageStore.open({ root, dockerHubFallback: false, blobAttempts: 2, ...options });
  }

  /** Runs deferred tasks newest first, then unmounts anything still mounted under our dirs and removes them. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const task of this.tasks.splice(0).reverse()) await task().catch((e: unknown) => errors.push(e));
    for (const dir of this.dirs.splice(0)) {
      const mounts = execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' })
        .split('\n')
        .filter((t) => t === dir || t.startsWith(`${dir}/`))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) {
        try {
          execFileSync('umount', ['-l', m]);
        } catch (e) {
          errors.push(e);
        }
      }
      await rm(dir, { recursive: true, force: true });
    }
    if (errors.length > 0) throw errors[0];
  }
}

/** Every path under root, relative and sorted. */
export async function listTree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.map((e) => relative(root, join(e.parentPath, e.name))).sort();
}
