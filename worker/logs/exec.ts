// `shoal exec` on the task's node: `runc exec` in the task's container (its environment, user and
// working directory, with the request's overrides), stdout and stderr streamed as they come, the exit
// code at the end (128+N for a signal, as a shell reports it). Cancelled or over its time limit, the
// command is SIGKILLed through runc's pid file, then runc itself.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RuncLocation {
  /** runc's `--root` (the executor's). */
  readonly root: string;
  readonly binary: string;
}

export interface ExecCommand {
  readonly containerId: string;
  readonly argv: readonly string[];
  readonly env?: readonly string[];
  readonly user?: string;
  readonly workdir?: string;
}

export interface ExecEvents {
  output(stream: 'stdout' | 'stderr', data: Buffer): void;
  /** Called once. exitCode -1 with `error` when runc could not run the command. */
  exit(exitCode: number, error: string): void;
}

export interface RunningExec {
  /** Kills the command (and runc); `exit` follows. */
  kill(): void;
}

const KILL_RUNC_AFTER_MS = 1000;

/** Starts the command; events arrive until `exit`. */
export function startExec(runc: RuncLocation, cmd: ExecCommand, events: ExecEvents, maxRunMs: number): RunningExec {
  let killed = false;
  let finished = false;
  let child: ReturnType<typeof spawn> | null = null;
  let pidFile = '';
  let dir = '';
  let stderrTail = '';
  const finish = (code: number, error: string): void => {
    if (finished) return;
    finished = true;
    clearTimeout(limit);
    if (dir !== '') void rm(dir, { recursive: true, force: true });
    events.exit(code, error);
  };
  const kill = (): void => {
    if (killed || finished) return;
    killed = true;
    void killByPidFile(pidFile).finally(() => {
      setTimeout(() => child?.kill('SIGKILL'), KILL_RUNC_AFTER_MS).unref();
    });
  };
  const limit = setTimeout(kill, maxRunMs);
  void (async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-exec-'));
    pidFile = join(dir, 'pid');
    if (killed) return finish(-1, 'cancelled');
    const args = ['--root', runc.root, 'exec', '--pid-file', pidFile];
    for (const e of cmd.env ?? []) args.push('--env', e);
    if (cmd.user !== undefined && cmd.user !== '') args.push('--user', cmd.user);
    if (cmd.workdir !== undefined && cmd.workdir !== '') args.push('--cwd', cmd.workdir);
    args.push(cmd.containerId, ...cmd.argv);
    const c = spawn(runc.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    c.stdout!.on('data', (d: Buffer) => events.output('stdout', d));
    c.stderr!.on('data', (d: Buffer) => {
      // runc's own complaints (no such container, executable not found) come on stderr too.
      stderrTail = (stderrTail + d.toString('utf8')).slice(-2048);
      events.output('stderr', d);
    });
    c.on('error', (err) => finish(-1, `could not run runc: ${err.message}`));
    c.on('close', (code, signal) => {
      if (killed) return finish(code ?? 128 + signalNumber(signal), 'cancelled');
      const exitCode = code ?? 128 + signalNumber(signal);
      // runc exits 255 when the container does not exist or the command cannot start.
      const runcFailed = exitCode === 255 && /container does not exist|exec failed|unable to start/i.test(stderrTail);
      finish(exitCode, runcFailed ? lastLine(stderrTail) : '');
    });
  })().catch((err: unknown) => finish(-1, `could not start the command: ${(err as Error).message}`));
  return { kill };
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

async function killByPidFile(pidFile: string): Promise<void> {
  if (pidFile === '') return;
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(pid) && pid > 1) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === null ? 0 : (osConstants.signals[signal] ?? 0);
}
