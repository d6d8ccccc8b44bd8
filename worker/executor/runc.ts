// runc's command line, always with our own --root (never the system default /run/runc, so the
// executor and its tests never see or touch containers they did not make).
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';

const RUNC_TIMEOUT_MS = 30_000;
const OUTPUT_MAX_BYTES = 4 * 1024 * 1024;

export type RuncStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export interface RuncState {
  readonly id: string;
  readonly pid: number;
  readonly status: RuncStatus;
  readonly bundle: string;
}

export class RuncCommandError extends Error {
  override readonly name = 'RuncCommandError';
  readonly code = 'ERR_RUNC';
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`runc ${args.join(' ')}: ${stderr.trim() || `exit ${exitCode}`}`);
  }

  /** runc's message for an ID it does not know. */
  get notFound(): boolean {
    return /does not exist|not found|no such file/i.test(this.stderr);
  }
}

export class Runc {
  constructor(
    /** runc's state directory (`--root`), ours alone. */
    readonly root: string,
    readonly binary: string = 'runc',
  ) {}

  private run(args: readonly string[], timeoutMs = RUNC_TIMEOUT_MS): Promise<string> {
    const full = ['--root', this.root, ...args];
    return new Promise((resolve, reject) => {
      execFile(this.binary, full, { timeout: timeoutMs, maxBuffer: OUTPUT_MAX_BYTES, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err !== null) {
          const code = typeof err.code === 'number' ? err.code : null;
          reject(new RuncCommandError(args, code, stderr !== '' ? stderr : err.message));
          return;
        }
        resolve(stdout);
      });
    });
  }

  /** State of one container, or undefined when runc does not know it. */
  async state(id: string): Promise<RuncState | undefined> {
    try {
      const out = await this.run(['state', id]);
      return parseState(JSON.parse(out) as Record<string, unknown>);
    } catch (err) {
      if (err instanceof RuncCommandError && err.notFound) return undefined;
      throw err;
    }
  }

  async list(): Promise<RuncState[]> {
    const out = await this.run(['list', '--format', 'json']);
    const parsed = JSON.parse(out.trim() === '' ? 'null' : out) as Record<string, unknown>[] | null;
    return (parsed ?? []).map(parseState);
  }

  /** Sends `signal` (name or number) to the init, or with all=true to every process of the container. */
  async kill(id: string, signal: string, all = false): Promise<void> {
    await this.run(['kill', ...(all ? ['--all'] : []), id, signal]);
  }

  async delete(id: string, force = false): Promise<void> {
    try {
      await this.run(['delete', ...(force ? ['--force'] : []), id]);
    } catch (err) {
      if (err instanceof RuncCommandError && err.notFound) return;
      throw err;
    }
  }

  /**
   * Runs argv in the container (`runc exec`, the container's env, user and cwd) and collects its output.
   * On timeout the process is SIGKILLed through its pid file and exitCode is -1.
   */
  exec(id: string, argv: readonly string[], opts: { timeoutMs: number; pidFile: string; outputMaxBytes: number }): Promise<{ exitCode: number; output: string; timedOut: boolean }> {
    return new Promise((resolve) => {
      const child = spawn(this.binary, ['--root', this.root, 'exec', '--pid-file', opts.pidFile, id, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      let timedOut = false;
      const collect = (d: Buffer): void => {
        if (output.length < opts.outputMaxBytes) output += d.toString('utf8').slice(0, opts.outputMaxBytes - output.length);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const timer = setTimeout(() => {
        timedOut = true;
        void killByPidFile(opts.pidFile).finally(() => {
          // If the pid file never appeared, runc itself is stuck: kill it too (bounded).
          setTimeout(() => child.kill('SIGKILL'), 1000).unref();
        });
      }, opts.timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve({ exitCode: -1, output: err.message, timedOut: false });
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ exitCode: timedOut ? -1 : (code ?? 128 + signalNumber(signal)), output, timedOut });
      });
    });
  }
}

async function killByPidFile(pidFile: string): Promise<void> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(pid) && pid > 1) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** 128 + N for a process ended by signal N, as a shell reports it. */
function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === null ? 0 : (osConstants.signals[signal] ?? 0);
}

function parseState(raw: Record<string, unknown>): RuncState {
  return {
    id: String(raw.id),
    pid: typeof raw.pid === 'number' ? raw.pid : 0,
    status: String(raw.status) as RuncStatus,
    bundle: String(raw.bundle ?? ''),
  };
}
