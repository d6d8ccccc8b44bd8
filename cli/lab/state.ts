// A lab's state file: everything `lab up` made (written before it makes each part, so that `lab
// down` after a crash knows what to look for) and the processes it started (PID + start time).
import { closeSync, constants, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../errors.js';
import { isProcessAlive } from '../proc.js';
import type { Role } from './naming.js';

export const DEFAULT_LAB_ROOT = '/var/lib/shoal-lab';
const STATE_FILE = 'state.json';
const SUBNETS_DIR = '.subnets';

export function labRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env['SHOAL_LAB_ROOT'] || DEFAULT_LAB_ROOT;
}

export function labDir(root: string, name: string): string {
  return join(root, name);
}

export interface ProcessRef {
  readonly pid: number;
  readonly startTime: string;
}

export interface LabHost {
  readonly name: string;
  readonly short: string;
  readonly role: Role;
  readonly index: number;
  readonly address: string;
  readonly netns: string;
  readonly veth: string;
  readonly dataRoot: string;
  readonly socket: string;
  readonly logFile: string;
  daemon?: ProcessRef;
}

export interface LabRegistry {
  readonly dir: string;
  readonly logFile: string;
  /** `ip:port` on the bridge, once listening. */
  address?: string;
  process?: ProcessRef;
}

export interface LabState {
  readonly version: 1;
  readonly name: string;
  readonly id: string;
  readonly dir: string;
  readonly subnetIndex: number;
  readonly subnet: string;
  readonly gateway: string;
  readonly bridge: string;
  readonly forwardChain: string;
  readonly createdAt: string;
  phase: 'creating' | 'up' | 'failed';
  readonly hosts: LabHost[];
  readonly registry: LabRegistry;
  /** Partitions in force: pairs of host-name groups that cannot reach each other. */
  partitions: [string[], string[]][];
  /** Filled in by formSwarm() once the manager lands. */
  swarm?: { readonly formed: boolean; readonly message: string; readonly nodeIds?: Readonly<Record<string, string>> };
}

export function readState(dir: string): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const state = JSON.parse(text) as LabState;
    if (state.version !== 1) throw new Error(`unknown version ${String(state.version)}`);
    return state;
  } catch (err) {
    throw new CliError('ERR_LAB', `the lab state file ${join(dir, STATE_FILE)} is unreadable (${(err as Error).message}); 'lab down' still removes what it can find by name`);
  }
}

/** Writes atomically (temp file + rename), so a crash leaves the old or the new state. */
export function writeState(state: LabState): void {
  mkdirSync(state.dir, { recursive: true, mode: 0o755 });
  const tmp = join(state.dir, `${STATE_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, join(state.dir, STATE_FILE));
}

/** Names of the labs that have a directory under the root. */
export function listLabNames(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

// ---- subnet reservations: one file per third octet, created with O_EXCL ------------------------

/** Reserves subnet `index` for lab `name`; false when another lab holds it. */
export function reserveSubnet(root: string, index: number, name: string): boolean {
  const dir = join(root, SUBNETS_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, String(index));
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    writeSync(fd, `${name}\n`);
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let owner = '';
  try {
    owner = readFileSync(path, 'utf8').trim();
  } catch {
    return false;
  }
  if (owner === name) return true;
  // A reservation whose lab is gone (no directory) is stale: take it over.
  if (owner !== '' && readState(labDir(root, owner)) === undefined && !listLabNames(root).includes(owner)) {
    rmSync(path, { force: true });
    return reserveSubnet(root, index, name);
  }
  return false;
}

export function releaseSubnets(root: string, name: string): void {
  const dir = join(root, SUBNETS_DIR);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    try {
      if (readFileSync(join(dir, e), 'utf8').trim() === name) rmSync(join(dir, e), { force: true });
    } catch {
      // raced with another release
    }
  }
}

/** Whether the host's daemon (the very process the lab started) still runs. */
export function daemonRunning(host: LabHost): boolean {
  return host.daemon !== undefined && isProcessAlive(host.daemon.pid, host.daemon.startTime || undefined);
}
