// Runs the system commands of the data plane: argument arrays only (never a shell), bounded by
// a timeout, with every failure turned into an OverlayCommandError naming the command and stderr.
// A command meant for another network namespace is prefixed with `nsenter --net=PATH`: only the
// network namespace is entered (not `ip netns exec`, which remounts /sys and hides cgroup v1 mounts).

import { spawn } from 'node:child_process';
import { OverlayCommandError } from './errors.js';

export const COMMAND_TIMEOUT_MS = 15_000;
const OUTPUT_LIMIT_BYTES = 8 * 1024 * 1024;

export interface RunOptions {
  /** Path of the network namespace to run in (`/run/netns/NAME`, `/proc/PID/ns/net`); undefined = ours. */
  readonly netns?: string | undefined;
  /** Written to stdin (iptables-restore input). */
  readonly input?: string;
  readonly timeoutMs?: number;
}

export function netnsArgv(netns: string | undefined, argv: readonly string[]): string[] {
  return netns === undefined ? [...argv] : ['nsenter', `--net=${netns}`, ...argv];
}

/** Runs argv and resolves with its stdout; rejects with OverlayCommandError. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const full = netnsArgv(options.netns, argv);
  const timeoutMs = options.timeoutMs ?? COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let failure: string | undefined;
    const timer = setTimeout(() => {
      failure = `timed out after ${timeoutMs} ms`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes <= OUTPUT_LIMIT_BYTES) out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      if (Buffer.concat(err).length < 64 * 1024) err.push(b);
    });
    child.on('error', (e) => {
      failure = `could not start: ${e.message}`;
    });
    child.stdin.on('error', () => {
      /* the command exited before reading its input; its exit status tells why */
    });
    child.stdin.end(options.input ?? '');
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      if (failure !== undefined || code !== 0) {
        reject(new OverlayCommandError(full, code, stderr, failure ?? (signal ? `killed by ${signal}` : undefined)));
        return;
      }
      resolve(Buffer.concat(out).toString('utf8'));
    });
  });
}

/** Like run, but a failure whose stderr matches `tolerated` (e.g. "does not exist") resolves to undefined. */
export async function runTolerating(argv: readonly string[], tolerated: RegExp, options: RunOptions = {}): Promise<string | undefined> {
  try {
    return await run(argv, options);
  } catch (e) {
    if (e instanceof OverlayCommandError && tolerated.test(e.stderr)) return undefined;
    throw e;
  }
}

/** stderr of ip/bridge/iptables/nsenter when the object (or namespace) to remove is already gone. */
export const GONE = /Cannot find device|does not exist|No such file or directory|No such process|Cannot open network namespace|doesn't exist|not found|No chain\/target\/match by that name|Bad rule/i;

/**
 * Makes sure an iptables jump rule is present: `iptables -t TABLE -C CHAIN RULE…`, and when it is
 * missing, inserts it first in the chain. `jump` is `['-t', table, chain, ...rule]`.
 */
export async function ensureIptablesJump(netns: string | undefined, jump: readonly string[]): Promise<void> {
  const [t, table, chain, ...rule] = jump;
  const present = await run(['iptables', t!, table!, '-C', chain!, ...rule], { netns }).then(
    () => true,
    () => false,
  );
  if (!present) await run(['iptables', t!, table!, '-I', chain!, '1', ...rule], { netns });
}
