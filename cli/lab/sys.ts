// Running the system tools the lab is built with (ip, iptables, nsenter, umount), with bounded time.
import { execFile } from 'node:child_process';
import { CliError } from '../errors.js';

const COMMAND_TIMEOUT_MS = 30_000;

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cmd args`; resolves with its code and output whatever the code. */
export function runCommand(cmd: string, args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) {
        resolve({ code: 0, stdout, stderr });
        return;
      }
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      if (e.code === 'ENOENT') resolve({ code: 127, stdout: '', stderr: `${cmd}: command not found` });
      else resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout, stderr: e.killed === true ? `${cmd} timed out after ${timeoutMs} ms` : stderr || e.message });
    });
  });
}

/** Runs `cmd args` and fails with its stderr when it exits non-zero. */
export async function mustRun(cmd: string, args: readonly string[]): Promise<string> {
  const r = await runCommand(cmd, args);
  if (r.code !== 0) throw new CliError('ERR_LAB', `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || `exit code ${r.code}`}`);
  return r.stdout;
}

/** Runs `cmd args` inside a lab host's network namespace only (not `ip netns exec`: see net.ts). */
export function runInNetns(netns: string, cmd: string, args: readonly string[]): Promise<RunResult> {
  return runCommand('nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args]);
}

export async function mustRunInNetns(netns: string, cmd: string, args: readonly string[]): Promise<string> {
  const r = await runInNetns(netns, cmd, args);
  if (r.code !== 0) throw new CliError('ERR_LAB', `${cmd} ${args.join(' ')} in ${netns} failed: ${r.stderr.trim() || `exit code ${r.code}`}`);
  return r.stdout;
}
