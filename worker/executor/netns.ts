// The loopback-only network namespace a task gets when the caller (the overlay) gives none:
// `ip netns add` (a bind mount under /run/netns) and `lo` up. We enter only the network namespace
// (`ip -n`), never `ip netns exec`, which remounts /sys and hides cgroup v1 mounts from its command.
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';

const IP_TIMEOUT_MS = 10_000;
export const NETNS_DIR = '/run/netns';

function ip(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: IP_TIMEOUT_MS, encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (err !== null) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Creates `name` with its loopback up; on failure removes what it made. */
export async function createLoopbackNetns(name: string): Promise<string> {
  await ip(['netns', 'add', name]);
  try {
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await deleteNetns(name).catch(() => undefined);
    throw err;
  }
  return netnsPath(name);
}

/** Deletes `name`; a namespace already gone is fine. */
export async function deleteNetns(name: string): Promise<void> {
  const exists = await stat(netnsPath(name)).then(
    () => true,
    () => false,
  );
  if (!exists) return;
  await ip(['netns', 'delete', name]);
}

export async function netnsExists(name: string): Promise<boolean> {
  return stat(netnsPath(name)).then(
    () => true,
    () => false,
  );
}
