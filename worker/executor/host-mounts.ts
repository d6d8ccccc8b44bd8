// Host-side mounts the executor makes or finds: the per-task secrets tmpfs, and the overlay roots an
// earlier executor process mounted (after a restart the image store holds no handle for them, so we
// unmount them ourselves). Node has no mount(2): mount(8) and umount(8).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

const MOUNT_TIMEOUT_MS = 15_000;
const UMOUNT_ATTEMPTS = 5;
const UMOUNT_RETRY_MS = 100;

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: MOUNT_TIMEOUT_MS, encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (err !== null) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

/** Mount points in this process's mount namespace (octal escapes of mountinfo decoded). */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined) out.push(field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))));
  }
  return out;
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await mountPoints()).includes(path);
}

export async function mountTmpfs(target: string, sizeBytes: number, mode: number): Promise<void> {
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=${mode.toString(8)},nosuid,nodev,noexec`, 'tmpfs', target]);
}

/** Unmounts `path` if it is a mount point (retrying while busy, then lazily so teardown never hangs). */
export async function unmountIfMounted(path: string): Promise<void> {
  for (let attempt = 1; attempt <= UMOUNT_ATTEMPTS; attempt++) {
    if (!(await isMountPoint(path))) return;
    try {
      await run('umount', [path]);
    } catch {
      await new Promise((r) => setTimeout(r, UMOUNT_RETRY_MS));
    }
  }
  if (await isMountPoint(path)) await run('umount', ['-l', path]);
}

/** Every mount point at or under `prefix`, deepest first. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  return (await mountPoints()).filter((m) => m === prefix || m.startsWith(`${prefix}/`)).sort((a, b) => b.length - a.length);
}
