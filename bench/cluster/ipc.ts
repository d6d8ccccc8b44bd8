// The bench's child processes (managers, worker processes) and how the parent talks to them: each
// child is forked with tsx and an IPC channel, sends { type: 'ready', info } (or 'failed') once
// started, then answers { id, op, args } with { type: 'reply', id, ok, result | error }. Children
// exit when the parent goes away (disconnect). What the bench starts it stops: every child is
// tracked and killed by PID on exit, failure or SIGINT/SIGTERM; temp dirs are removed.
import { fork, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';

export type ChildReply =
  | { readonly type: 'ready'; readonly info: unknown }
  | { readonly type: 'failed'; readonly error: string }
  | { readonly type: 'reply'; readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly type: 'reply'; readonly id: number; readonly ok: false; readonly error: string };

export interface ChildRequest {
  readonly id: number;
  readonly op: string;
  readonly args: Readonly<Record<string, unknown>>;
}

export class BenchChildError extends Error {
  readonly code = 'ERR_BENCH_CHILD';
}

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** One forked child speaking the request/reply protocol. */
export class Child<Info = unknown> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly exited: Promise<void>;
  info!: Info;

  private constructor(readonly name: string, readonly child: ChildProcess, readonly logFile: string) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (m: ChildReply) => {
      if (m.type !== 'reply') return;
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(new BenchChildError(`${name}: ${m.error}`));
    });
    child.once('exit', (code, signal) => {
      children.delete(child);
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new BenchChildError(`${name} exited (${signal ?? code}) before answering; see ${logFile}`));
      }
      this.pending.clear();
    });
  }

  /** Forks `entry` (a .ts file) with `arg` as its JSON argument; resolves once it is ready. */
  static async start<I>(name: string, entry: string, arg: unknown, logFile: string, opts: { execArgv?: readonly string[]; timeoutMs: number }): Promise<Child<I>> {
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = fork(entry, [JSON.stringify(arg)], {
      execArgv: ['--import', 'tsx', ...(opts.execArgv ?? [])],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env },
    });
    children.add(child);
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const c = new Child<I>(name, child, logFile);
    try {
      c.info = await new Promise<I>((resolve, reject) => {
        const timer = setTimeout(() => reject(new BenchChildError(`${name} did not start within ${opts.timeoutMs} ms; see ${logFile}`)), opts.timeoutMs);
        child.on('message', (m: ChildReply) => {
          if (m.type === 'ready') {
            clearTimeout(timer);
            resolve(m.info as I);
          } else if (m.type === 'failed') {
            clearTimeout(timer);
            reject(new BenchChildError(`${name} failed to start: ${m.error}`));
          }
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new BenchChildError(`${name} exited (${signal ?? code}) while starting; see ${logFile}`));
        });
      });
    } catch (err) {
      await c.kill();
      throw err;
    }
    return c;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  request<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    if (!this.alive || !this.child.connected) return Promise.reject(new BenchChildError(`${this.name} is not running; see ${this.logFile}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BenchChildError(`${this.name}: ${op} not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, op, args } satisfies ChildRequest);
    });
  }

  /** Asks the child to close (op 'close'), then disconnects; SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.alive) return;
    await this.request('close', {}, graceMs).catch(() => undefined);
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (!this.alive) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      return;
    }
    await this.exited;
  }
}

/** Kills every child still running (by PID), waits (bounded) for them to exit, removes the temp dirs. */
export async function cleanup(): Promise<void> {
  const exits: Promise<void>[] = [];
  for (const c of children) {
    exits.push(new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      setTimeout(resolve, 5000).unref();
    }));
    try {
      if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  // A child still writing into a temp dir while it is removed would leave files behind.
  await Promise.all(exits);
  await Promise.allSettled([...tempDirs].map((d) => rm(d, { recursive: true, force: true })));
  tempDirs.clear();
}

export function installExitHandlers(): void {
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\nbench: ${sig}, stopping children\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => {
    for (const c of children) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
}

// ----------------------------------------------------------------------------- child side

/** Runs in a child: answers requests with `handle` and exits when the parent goes away. */
export function serveParent(handle: (op: string, args: Readonly<Record<string, unknown>>) => Promise<unknown>, onDisconnect: () => Promise<void>): void {
  process.on('disconnect', () => {
    void onDisconnect().finally(() => process.exit(0));
  });
  process.on('message', (msg: ChildRequest) => {
    handle(msg.op, msg.args ?? {}).then(
      (result) => process.send?.({ type: 'reply', id: msg.id, ok: true, result: result ?? null } satisfies ChildReply),
      (err: unknown) => process.send?.({ type: 'reply', id: msg.id, ok: false, error: (err as Error)?.stack ?? String(err) } satisfies ChildReply),
    );
  });
}

export function sendToParent(m: ChildReply): void {
  process.send?.(m);
}

/** Resident set size of this process in MB. */
export function rssMb(): number {
  return process.memoryUsage.rss() / (1024 * 1024);
}

/** A V8 CPU profile of this process between start() and stop(file) (the inspector's Profiler). */
export class Profiler {
  private session: Session | null = null;

  async start(): Promise<void> {
    if (this.session !== null) throw new Error('a profile is already running');
    const s = new Session();
    s.connect();
    await s.post('Profiler.enable');
    await s.post('Profiler.setSamplingInterval', { interval: 500 });
    await s.post('Profiler.start');
    this.session = s;
  }

  async stop(file: string): Promise<void> {
    const s = this.session;
    if (s === null) throw new Error('no profile running');
    this.session = null;
    const { profile } = await s.post('Profiler.stop');
    s.disconnect();
    await writeFile(file, JSON.stringify(profile));
  }
}

/** CPU time (user + system) this process used so far, in ms. */
export function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

export interface ThreadCpu {
  readonly main_user_ms: number;
  readonly main_sys_ms: number;
  readonly other_user_ms: number;
  readonly other_sys_ms: number;
}

const ZERO_THREADS: ThreadCpu = { main_user_ms: 0, main_sys_ms: 0, other_user_ms: 0, other_sys_ms: 0 };

/** Per-thread CPU from /proc/self/task/<tid>/stat (utime, stime in clock ticks of 10 ms); zeros where /proc is missing. */
export function threadCpu(): ThreadCpu {
  const TICK_MS = 10;
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return ZERO_THREADS;
  }
  const out = { ...ZERO_THREADS };
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // Fields after the command (which may hold spaces) start at state: utime is the 14th field overall, stime the 15th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(f[11]) * TICK_MS;
    const sys = Number(f[12]) * TICK_MS;
    if (Number(tid) === process.pid) {
      out.main_user_ms += user;
      out.main_sys_ms += sys;
    } else {
      out.other_user_ms += user;
      out.other_sys_ms += sys;
    }
  }
  return out;
}
