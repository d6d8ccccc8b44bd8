// Managers in child processes, for multi-process tests: each has its own data root (under one
// mkdtemp base), its own cluster port (port 0 on 127.0.0.1, reported back over IPC and kept across
// restarts), real gRPC + mutual TLS between them. `kill('SIGKILL')` is a crash; `stop()` a clean
// shutdown; `cleanup()` kills whatever still runs and removes the base directory.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ChildMessage, ProcessInfo, ProcessTuning, ReplyError, StartSpec } from './manager-process.js';

const ENTRY = fileURLToPath(new URL('./manager-process.ts', import.meta.url));

export const DEFAULT_START_TIMEOUT_MS = 90_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export class ChildRequestError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** One manager process. */
export class ManagerProcess {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private exited: Promise<void>;
  /** Last lines of the child's stderr, for failure messages. */
  readonly stderr: string[] = [];
  info!: ProcessInfo;

  private constructor(readonly child: ChildProcess, readonly dataRoot: string) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr?.on('data', (b: Buffer) => {
      this.stderr.push(b.toString());
      if (this.stderr.length > 50) this.stderr.shift();
    });
    child.on('message', (m: ChildMessage) => {
      if (m.type !== 'reply') return;
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(new ChildRequestError(m.error.code, m.error.message));
    });
    child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`manager process exited (${signal ?? code}) before answering`));
      }
      this.pending.clear();
    });
  }

  static async start(spec: StartSpec, timeoutMs = DEFAULT_START_TIMEOUT_MS): Promise<ManagerProcess> {
    const child = fork(ENTRY, [JSON.stringify(spec)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env },
    });
    const mp = new ManagerProcess(child, spec.dataRoot);
    try {
      mp.info = await new Promise<ProcessInfo>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`manager did not start within ${timeoutMs} ms`)), timeoutMs);
        child.on('message', (m: ChildMessage) => {
          if (m.type === 'ready') {
            clearTimeout(timer);
            resolve(m.info);
          } else if (m.type === 'failed') {
            clearTimeout(timer);
            reject(new ChildRequestError(m.error.code, m.error.message));
          }
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`manager process exited (${signal ?? code}) while starting: ${mp.stderr.join('').slice(-2000)}`));
        });
      });
    } catch (err) {
      await mp.kill('SIGKILL');
      throw err;
    }
    return mp;
  }

  get nodeId(): string {
    return this.info.nodeId;
  }

  get addr(): string {
    return this.info.addr;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  request<T = unknown>(op: string, args: Record<string, unknown> = {}, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<T> {
    if (!this.alive || !this.child.connected) return Promise.reject(new Error(`manager ${this.info?.nodeId ?? '?'} is not running`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${op} not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, op, args });
    });
  }

  /** Resolves with what the request threw (or null if it succeeded). */
  async requestError(op: string, args: Record<string, unknown> = {}): Promise<ReplyError | null> {
    try {
      await this.request(op, args);
      return null;
    } catch (err) {
      const e = err as ChildRequestError;
      return { code: e.code ?? 'ERROR', message: e.message };
    }
  }

  /** Sends `signal` and waits for the exit (SIGKILL = crash). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.alive) return;
    this.child.kill(signal);
    await this.exited;
  }

  /** Clean shutdown (Manager.close), then the process exits when disconnected. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    try {
      await this.request('close', {}, 10_000);
    } catch {
      // fall through to the kill
    }
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface Status {
  readonly nodeId: string;
  readonly role: string;
  readonly leader: string | null;
  readonly term: number;
  readonly commit: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly members: readonly { nodeId: string; voter: boolean; reachable: boolean; leader: boolean; addr: string | null }[];
  readonly storeVersion: number;
  readonly transport: readonly { peer: string; addr: string; state: string; queuedMsgs: number; heardMsAgo: number | null }[];
}

/** A swarm of manager processes under one temp directory. */
export class ManagerHarness {
  readonly processes: ManagerProcess[] = [];
  private seq = 0;

  private constructor(readonly baseDir: string, readonly tuning: ProcessTuning) {}

  static async create(tuning: ProcessTuning): Promise<ManagerHarness> {
    return new ManagerHarness(await mkdtemp(path.join(os.tmpdir(), 'shoal-managers-')), tuning);
  }

  newDataRoot(): string {
    return path.join(this.baseDir, `m${++this.seq}`);
  }

  private track(p: ManagerProcess): ManagerProcess {
    this.processes.push(p);
    return p;
  }

  async init(): Promise<ManagerProcess> {
    return this.track(await ManagerProcess.start({ mode: 'init', dataRoot: this.newDataRoot(), listenAddr: '127.0.0.1:0', ...this.tuning }));
  }

  async join(via: ManagerProcess, token: string): Promise<ManagerProcess> {
    return this.track(await ManagerProcess.start({ mode: 'join', dataRoot: this.newDataRoot(), listenAddr: '127.0.0.1:0', remoteAddr: via.addr, token, ...this.tuning }));
  }

  async restart(dataRoot: string): Promise<ManagerProcess> {
    return this.track(await ManagerProcess.start({ mode: 'restart', dataRoot, ...this.tuning }));
  }

  async forceNewCluster(dataRoot: string): Promise<ManagerProcess> {
    return this.track(await ManagerProcess.start({ mode: 'force-new-cluster', dataRoot, ...this.tuning }));
  }

  running(): ManagerProcess[] {
    return this.processes.filter((p) => p.alive);
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.processes.map((p) => p.kill('SIGKILL')));
    await rm(this.baseDir, { recursive: true, force: true });
  }
}

/** Polls `probe` every 50 ms until it returns a value other than undefined/false, at most `limitMs`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, limitMs = 30_000): Promise<T> {
  const deadline = performance.now() + limitMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${(last as Error).message})`}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
