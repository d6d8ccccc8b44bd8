// One daemon per data root. The lock is a file created with O_EXCL holding `PID STARTTIME`; a lock
// whose process is gone (or a zombie, or a different process with a reused PID) is stale and taken
// over, so a daemon killed with SIGKILL does not block its restart.
import { constants, openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { isProcessAlive, readProcStat } from '../proc.js';

export const LOCK_FILE = 'shoald.lock';
const TAKEOVER_ATTEMPTS = 3;

export class DataRootLockedError extends Error {
  override readonly name = 'DataRootLockedError';
  readonly code = 'ERR_DATA_ROOT_LOCKED';
  constructor(
    readonly dataRoot: string,
    readonly ownerPid: number,
  ) {
    super(`another shoald (pid ${ownerPid}) is already running with data root ${dataRoot}; stop it first or use another --data-root`);
  }
}

export interface DataRootLock {
  readonly path: string;
  release(): void;
}

function parseOwner(text: string): { pid: number; startTime: string | undefined } {
  const [pid, startTime] = text.trim().split(/\s+/);
  return { pid: Number(pid), startTime };
}

export function acquireDataRootLock(dataRoot: string): DataRootLock {
  const path = join(dataRoot, LOCK_FILE);
  const self = readProcStat(process.pid);
  const content = `${process.pid} ${self?.startTime ?? ''}\n`;
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner: { pid: number; startTime: string | undefined };
      try {
        owner = parseOwner(readFileSync(path, 'utf8'));
      } catch (readErr) {
        if ((readErr as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw readErr;
      }
      if (isProcessAlive(owner.pid, owner.startTime === '' ? undefined : owner.startTime)) {
        throw new DataRootLockedError(dataRoot, owner.pid);
      }
      try {
        unlinkSync(path); // stale: its owner is gone
      } catch (unlinkErr) {
        if ((unlinkErr as NodeJS.ErrnoException).code !== 'ENOENT') throw unlinkErr;
      }
      continue;
    }
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      path,
      release: () => {
        if (released) return;
        released = true;
        try {
          if (parseOwner(readFileSync(path, 'utf8')).pid === process.pid) unlinkSync(path);
        } catch {
          // already gone
        }
      },
    };
  }
  throw new Error(`could not take the lock ${path} after ${TAKEOVER_ATTEMPTS} attempts (another shoald starting at the same time?)`);
}
