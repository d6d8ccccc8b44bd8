// Mounting and unmounting overlayfs through mount(8)/umount(8): Node has no mount(2).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ImageStoreError } from './errors.js';

const execFileAsync = promisify(execFile);
const MOUNT_TIMEOUT_MS = 30_000;
/** The kernel copies at most one page of mount options. */
export const MOUNT_OPTIONS_MAX_BYTES = 4000;
const UMOUNT_ATTEMPTS = 5;
const UMOUNT_RETRY_DELAY_MS = 100;

export interface OverlaySpec {
  /** Lower directories, top layer first; relative to `cwd` when given. */
  readonly lowerDirs: readonly string[];
  readonly upperDir: string;
  readonly workDir: string;
  readonly target: string;
  /** Directory to resolve relative lower paths against (keeps the option string short). */
  readonly cwd: string;
}

/** The `-o` of `mount -t overlay` for spec (checked: no separators inside paths, fits one page). */
export function overlayOptions(spec: Omit<OverlaySpec, 'target' | 'cwd'>): string {
  for (const p of [...spec.lowerDirs, spec.upperDir, spec.workDir]) {
    if (/[,:\n]/.test(p) || p.includes('\u001f')) throw new ImageStoreError('ERR_IMAGE_MOUNT', `overlay path ${JSON.stringify(p)} contains a comma, colon or newline`);
  }
  const options = `lowerdir=${spec.lowerDirs.join(':')},upperdir=${spec.upperDir},workdir=${spec.workDir}`;
  if (Buffer.byteLength(options) > MOUNT_OPTIONS_MAX_BYTES) {
    throw new ImageStoreError('ERR_IMAGE_TOO_MANY_LAYERS', `overlay options for ${spec.lowerDirs.length} layers exceed ${MOUNT_OPTIONS_MAX_BYTES} bytes`);
  }
  return options;
}

export async function mountOverlay(spec: OverlaySpec): Promise<void> {
  await mountOverlayWith(overlayOptions(spec), spec.target, spec.cwd);
}

/** `mount -t overlay overlay -o options target`, run in cwd (relative lower dirs resolve there). */
export async function mountOverlayWith(options: string, target: string, cwd: string): Promise<void> {
  try {
    await execFileAsync('mount', ['-t', 'overlay', 'overlay', '-o', options, target], { cwd, timeout: MOUNT_TIMEOUT_MS });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new ImageStoreError('ERR_IMAGE_MOUNT', `mount overlay on ${target}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** Unmounts target; retries while busy, then detaches lazily so teardown never hangs. */
export async function unmount(target: string): Promise<void> {
  let last: unknown;
  for (let attempt = 1; attempt <= UMOUNT_ATTEMPTS; attempt++) {
    try {
      await execFileAsync('umount', [target], { timeout: MOUNT_TIMEOUT_MS });
      return;
    } catch (err) {
      last = err;
      const stderr = (err as { stderr?: string }).stderr ?? '';
      if (/not mounted|no mount point/i.test(stderr)) return;
      await new Promise((r) => setTimeout(r, UMOUNT_RETRY_DELAY_MS));
    }
  }
  try {
    await execFileAsync('umount', ['-l', target], { timeout: MOUNT_TIMEOUT_MS });
  } catch {
    const e = last as { stderr?: string; message: string };
    throw new ImageStoreError('ERR_IMAGE_MOUNT', `umount ${target}: ${e.stderr?.trim() || e.message}`, { cause: last });
  }
}
