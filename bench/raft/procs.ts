// What the benchmark starts, it stops: child processes are tracked by PID and killed by PID
// (SIGTERM, then SIGKILL after a grace period) on normal exit, on failure and on SIGINT/SIGTERM;
// temp dirs are removed. Ports are picked by binding port 0 on loopback and releasing them.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let cleaning: Promise<void> | null = null;

export class ChildExitedError extends Error {
  readonly code = 'ERR_BENCH_CHILD_EXITED';
  constructor(override readonly name: string, readonly exitCode: number | null, readonly logFile: string) {
    super(`${name} exited early (code ${exitCode}); see ${logFile}`);
  }
}

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** `count` distinct ports that were free on 127.0.0.1 a moment ago (held together so they differ). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<number | null>;
}

/** Starts a tracked child; stdout/stderr go to `logFile` unless `pipeStdout` (then stdout is readable). */
export function startChild(name: string, cmd: string, args: readonly string[], logFile: string, opts: { pipeStdout?: boolean; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Spawned {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  children.add(child);
  if (!opts.pipeStdout) child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
    child.once('error', () => {
      children.delete(child);
      resolve(null);
    });
  });
  return { child, pid: child.pid, logFile, exited };
}

/** Kills one child by PID: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(s: Spawned, graceMs = 3000): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  try {
    process.kill(s.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([s.exited, timer])) === 'timeout') {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await s.exited;
  }
}

/** Stops every tracked child and removes every temp dir. Idempotent. */
export function cleanup(): Promise<void> {
  if (cleaning === null) {
    cleaning = (async () => {
      const all = [...children].map((child) => {
        const exited = new Promise<number | null>((r) => {
          if (child.exitCode !== null || child.signalCode !== null) r(child.exitCode);
          else child.once('exit', (code) => r(code));
        });
        return stopChild({ child, pid: child.pid!, logFile: '', exited });
      });
      await Promise.allSettled(all);
      await Promise.allSettled([...tempDirs].map((d) => rm(d, { recursive: true, force: true })));
      tempDirs.clear();
    })();
  }
  return cleaning;
}

/** Makes SIGINT/SIGTERM and uncaught errors clean up before the process exits. */
export function installExitHandlers(): void {
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\nbench: ${sig}, stopping children\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('uncaughtException', (err) => {
    process.stderr.write(`bench: ${err.stack ?? String(err)}\n`);
    void cleanup().finally(() => process.exit(1));
  });
  // Last resort if the loop ends without cleanup: synchronous SIGKILL by PID.
  process.once('exit', () => {
    for (const c of children) {
      try {
        process.kill(c.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
}
