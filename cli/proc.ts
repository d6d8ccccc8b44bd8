// Facts about processes from /proc, used to trust a recorded PID only while it is the same live
// process: PID 1 reaps orphans late here (a killed daemon stays a zombie for seconds) and PIDs get
// reused, so a PID alone proves nothing (../shared/reference/runtime-recipe.md, gotchas).
import { readFileSync } from 'node:fs';

export interface ProcStat {
  /** One-letter state: R, S, D, Z (zombie), T, X, ... */
  readonly state: string;
  /** Start time in clock ticks after boot (field 22): with the PID, a process's identity. */
  readonly startTime: string;
}

export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces or ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  if (state === undefined || startTime === undefined) return undefined;
  return { state, startTime };
}

/** True when `pid` is a live (not zombie, not dead) process, and the same one if `startTime` is given. */
export function isProcessAlive(pid: number, startTime?: string): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  const stat = readProcStat(pid);
  if (stat === undefined || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}
