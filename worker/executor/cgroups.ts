// cgroup facts the executor needs beyond what runc applies: which hierarchy the host runs (v1 or
// v2, decided the way runc decides it: the file system type of /sys/fs/cgroup), the OOM-kill count
// of a container's memory cgroup, and removing the parent directories runc leaves behind.
import { readdir, readFile, rmdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_SUPER_MAGIC = 0x63677270;

export type CgroupMode = 'v1' | 'v2';

let modeCache: CgroupMode | undefined;

export async function cgroupMode(): Promise<CgroupMode> {
  if (modeCache === undefined) {
    const st = await statfs(CGROUP_ROOT);
    modeCache = st.type === CGROUP2_SUPER_MAGIC ? 'v2' : 'v1';
  }
  return modeCache;
}

/** Directories of `cgroupsPath` (runc's `linux.cgroupsPath`, absolute, cgroupfs driver) in every mounted hierarchy. */
async function hierarchyDirs(cgroupsPath: string): Promise<string[]> {
  if ((await cgroupMode()) === 'v2') return [join(CGROUP_ROOT, cgroupsPath)];
  const entries = await readdir(CGROUP_ROOT, { withFileTypes: true }).catch(() => []);
  // Comma-joined names (cpu,cpuacct) are symlinks to the real mounts: skip them.
  return entries.filter((e) => e.isDirectory()).map((e) => join(CGROUP_ROOT, e.name, cgroupsPath));
}

/**
 * How many processes the kernel's OOM killer killed in this cgroup (v1 `memory.oom_control` oom_kill,
 * v2 `memory.events` oom_kill, which counts the subtree). 0 when the cgroup is gone or has no counter.
 */
export async function oomKillCount(cgroupsPath: string): Promise<number> {
  const mode = await cgroupMode();
  const file = mode === 'v2' ? join(CGROUP_ROOT, cgroupsPath, 'memory.events') : join(CGROUP_ROOT, 'memory', cgroupsPath, 'memory.oom_control');
  const text = await readFile(file, 'utf8').catch(() => '');
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m === null ? 0 : Number(m[1]);
}

/**
 * Removes the cgroup directories at `cgroupsPath` and then its empty parents up to (and including)
 * `stopAt`, in every hierarchy. A directory still holding processes stays (rmdir fails with EBUSY);
 * returns the directories that could not be removed.
 */
export async function removeCgroupTree(cgroupsPath: string, stopAt: string): Promise<string[]> {
  const left: string[] = [];
  const paths: string[] = [];
  for (let p = cgroupsPath; p.length >= stopAt.length && p !== '/' && p !== ''; p = p.slice(0, p.lastIndexOf('/'))) paths.push(p);
  for (const p of paths) {
    for (const dir of await hierarchyDirs(p)) {
      await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return;
        // A parent still shared with other tasks is not empty: that is expected, not a leak.
        if (p === cgroupsPath || err.code !== 'EBUSY') left.push(dir);
      });
    }
  }
  return left;
}

/** Whether a cgroup directory exists for `cgroupsPath` in any hierarchy (for tests and cleanup checks). */
export async function cgroupExists(cgroupsPath: string): Promise<boolean> {
  for (const dir of await hierarchyDirs(cgroupsPath)) {
    const ok = await readdir(dir).then(
      () => true,
      () => false,
    );
    if (ok) return true;
  }
  return false;
}
