// Starting a lab host's shoald: `nsenter --net=/run/netns/HOST node <shoald entry> ...`, detached,
// its output in the host's log file. Run from the compiled CLI (dist/) it starts the compiled
// daemon; run from source (tsx) it starts the daemon from source the same way.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withShoaldLaunchEnv } from '../daemon/launch-env.js';
import { CliError } from '../errors.js';
import { readProcStat } from '../proc.js';
import type { LabHost, LabState, ProcessRef } from './state.js';

const HERE = fileURLToPath(import.meta.url);
const FROM_SOURCE = HERE.endsWith('.ts');

/** The repository root (where node_modules is). */
export const REPO_ROOT = FROM_SOURCE ? join(dirname(HERE), '..', '..') : join(dirname(HERE), '..', '..', '..');

/** `node [loader] <entry>` for one of our entry points (`shoald` or `shoal`). */
export function nodeCommand(entry: 'shoald' | 'shoal'): string[] {
  const file = join(dirname(HERE), '..', `${entry}${FROM_SOURCE ? '.ts' : '.js'}`);
  return FROM_SOURCE ? [process.execPath, '--import', 'tsx', file] : [process.execPath, file];
}

export function daemonArgs(state: LabState, host: LabHost): string[] {
  const registry = state.registry.address;
  return [
    '--data-root', host.dataRoot,
    '--socket', host.socket,
    '--listen-addr', `${host.address}:2377`,
    '--advertise-addr', host.address,
    '--hostname', host.name,
    ...(registry !== undefined ? ['--registry-mirror', `http://${registry}`, '--insecure-registry', registry] : []),
  ];
}

export function startDaemon(state: LabState, host: LabHost): ProcessRef {
  mkdirSync(host.dataRoot, { recursive: true, mode: 0o700 });
  mkdirSync(dirname(host.socket), { recursive: true });
  const [node, ...rest] = nodeCommand('shoald') as [string, ...string[]];
  const logFd = openSync(host.logFile, 'a');
  // The environment bin/shoald's first line would set (malloc arenas), since node is started directly.
  const env = withShoaldLaunchEnv(process.env);
  delete env['DOCKER_HOST'];
  delete env['SHOAL_HOST'];
  const child = spawn('nsenter', [`--net=/run/netns/${host.netns}`, '--', node, ...rest, ...daemonArgs(state, host)], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    cwd: REPO_ROOT,
    env,
  });
  closeSync(logFd);
  child.unref();
  if (child.pid === undefined) throw new CliError('ERR_LAB', `could not start shoald for ${host.name} (is nsenter installed? it is in util-linux)`);
  // nsenter execs the daemon in place (no --fork), so this PID is the daemon's.
  return { pid: child.pid, startTime: readProcStat(child.pid)?.startTime ?? '' };
}
