// The per-container shim: a small native monitor (shim/shoal-shim.c, compiled on first use by
// shim/build.ts) forked by one long-lived launcher process (the same binary, in its own session, no
// tty). The shim makes itself a child subreaper and starts the container with `runc run -d`: runc
// exits once the container runs, its init is reparented to the shim, which waits for it and writes
// its exit status (the init's exit code, 128+N for signal N) to a file. Why a shim, and why this one:
//  - Only the parent of the container's init learns its exit status, and Node cannot make itself a
//    child subreaper (no prctl). The shim is the init's parent once runc exits, so no Go runc process
//    stays per container (as containerd-shim and conmon do): one small C process instead of an `sh`
//    plus a foreground `runc run` (~2.2 MiB PSS per task before, see bench/executor).
//  - The shim outlives the executor: a restarted shoald finds the status file (or a running container)
//    instead of a lost child. The launcher reaps shims that end, and after the daemon is gone it stays
//    (reaping) until its last shim has ended, so no shim becomes a zombie of PID 1.
//  - The shim holds both log FIFOs open read-write, so the container never gets SIGPIPE while no
//    executor reads them (its writes wait in the pipe buffer instead). After the exit it lingers until
//    the executor acknowledges the status (ackShim), so output still in the pipes is not lost when the
//    container ends while no executor runs; then the executor reads EOF and knows it has everything.
//  - `--keep` leaves the stopped container (and its cgroup) in place, so the OOM-kill counter can be
//    read after the exit; `runc delete` at remove() clears it.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** File names in a task's directory. */
export const TASK_FILES = {
  record: 'task.json',
  bundle: 'bundle',
  stdoutFifo: 'stdout.fifo',
  stderrFifo: 'stderr.fifo',
  ackFifo: 'ack.fifo',
  pid: 'pid',
  exit: 'exit',
  shimLog: 'shim.log',
  runcLog: 'runc.log',
  healthPid: 'health.pid',
  shimReady: 'shim.ready',
  shimFailed: 'shim.failed',
  shimWhy: 'shim.why',
  shimPid: 'shim.pid',
} as const;

// The protocol (shoal-shim.c's header has it step by step): the launcher reads one request per line
// on stdin (fields separated by \037: mode, task dir, container id, mount cwd, mount options), forks
// a shim for it, writes the shim's PID to shim.pid and answers with it on stdout. The shim makes the
// FIFOs, mounts the root when asked, and creates shim.ready once it holds all three FIFOs (from then
// on a `start` written to ack.fifo reaches it), or shim.failed once the reason is in shim.why. Then it
// waits for its `start` line on ack.fifo; any other line cancels it. It holds ack.fifo open
// (read-write, so the open never blocks) for its whole life: after the status file is written it
// waits on it again until the executor has seen the status, keeping the log FIFOs (and whatever the
// container wrote last) alive while no executor runs. EOF on the launcher's stdin (the daemon went
// away) ends the launcher once its shims have ended, never the shims.

/** Writes one line to a waiting shim; false when no shim holds ack.fifo (none was spawned, or it died). */
export function tellShim(taskDir: string, line: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(join(taskDir, TASK_FILES.ackFifo), constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(fd, `${line}\n`);
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Tells a shim whose container has exited that its status was collected (it then closes the log
 * FIFOs and ends), or cancels a shim still waiting to start. Harmless when no shim is there.
 */
export function ackShim(taskDir: string): void {
  tellShim(taskDir, 'ack');
}

/** What a shim does before it waits: `mount` is the overlay the shim mounts on `<taskDir>/bundle/rootfs`. */
export interface ShimRequest {
  readonly taskDir: string;
  readonly containerId: string;
  /** Run the container at once instead of waiting for `start` (a respawn at start()). */
  readonly now: boolean;
  readonly mount?: { readonly cwd: string; readonly options: string };
}

const FIELD_SEPARATOR = '\x1f';
/** How long the launcher may take to answer with a shim's PID. */
const LAUNCH_TIMEOUT_MS = 30_000;

export class ShimLaunchError extends Error {
  override readonly name = 'ShimLaunchError';
  readonly code = 'ERR_SHIM_LAUNCH';
}

/**
 * Forks shims through one long-lived launcher (own session, no tty; spawned at the first launch and
 * again if it dies). Its shims are its children and outlive the daemon.
 */
export class ShimLauncher {
  private child: ChildProcess | undefined;
  private readonly waiting: { resolve(pid: number): void; reject(err: Error): void; timer: NodeJS.Timeout }[] = [];
  private buffered = '';
  private closed = false;
  private rebuilding: Promise<void> | undefined;

  constructor(
    /** The compiled shoal-shim (shim/build.ts `shimBinary`). */
    private shimBinary: string,
    private readonly runcBinary: string,
    private readonly runcRoot: string,
    /** Builds the shim again when its file is gone at a (re)spawn of the launcher (someone cleaned the cache). */
    private readonly rebuild?: () => Promise<string>,
  ) {}

  /** The launcher's PID while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Forks a shim; resolves with its PID once the launcher has forked it. */
  launch(req: ShimRequest): Promise<number> {
    if (this.closed) return Promise.reject(new ShimLaunchError('the shim launcher is closed'));
    const fields = [req.now ? 'now' : 'wait', req.taskDir, req.containerId, req.mount?.cwd ?? '', req.mount?.options ?? ''];
    if (fields.some((f) => f.includes(FIELD_SEPARATOR) || f.includes('\n'))) return Promise.reject(new ShimLaunchError(`shim request fields must not contain newlines or \\x1f: ${JSON.stringify(fields)}`));
    const rebuild = this.rebuild;
    if (this.child === undefined && this.rebuilding === undefined && rebuild !== undefined && !existsSync(this.shimBinary)) {
      this.rebuilding = rebuild()
        .then((path) => void (this.shimBinary = path))
        .finally(() => (this.rebuilding = undefined));
    }
    // Requests made meanwhile queue behind the rebuild, in order.
    if (this.rebuilding !== undefined) {
      return this.rebuilding.then(
        () => this.send(fields),
        (err: unknown) => Promise.reject(new ShimLaunchError(`the shim binary ${this.shimBinary} is gone and could not be built again: ${err instanceof Error ? err.message : String(err)}`, { cause: err })),
      );
    }
    return this.send(fields);
  }

  private send(fields: readonly string[]): Promise<number> {
    if (this.closed) return Promise.reject(new ShimLaunchError('the shim launcher is closed'));
    const child = this.ensureChild();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiting.findIndex((w) => w.timer === timer);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new ShimLaunchError(`the shim launcher did not answer within ${LAUNCH_TIMEOUT_MS} ms`));
        // Answers would now be out of step with the requests: start over with a new launcher.
        this.restart();
      }, LAUNCH_TIMEOUT_MS);
      timer.unref();
      this.waiting.push({ resolve, reject, timer });
      this.holdLoop(child);
      child.stdin?.write(`${fields.join(FIELD_SEPARATOR)}\n`);
    });
  }

  private ensureChild(): ChildProcess {
    if (this.child !== undefined) return this.child;
    const child = spawn(this.shimBinary, ['launcher', this.runcBinary, this.runcRoot], {
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    child.unref();
    // An idle launcher must not keep the daemon's event loop alive (holdLoop refs it while a launch waits).
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    child.stdin?.on('error', () => undefined);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      this.buffered += chunk;
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const w = this.waiting.shift();
        this.holdLoop(child);
        if (w === undefined) continue;
        clearTimeout(w.timer);
        const pid = Number(line.trim());
        if (Number.isInteger(pid) && pid > 0) w.resolve(pid);
        else w.reject(new ShimLaunchError(`the shim launcher answered ${JSON.stringify(line)}`));
      }
    });
    const gone = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      this.buffered = '';
      for (const w of this.waiting.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new ShimLaunchError(`the shim launcher ${why}`));
      }
    };
    child.once('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    child.once('error', (err) => gone(`failed: ${err.message}`));
    this.child = child;
    return child;
  }

  /** Keeps the event loop alive while a launch waits for its answer, and only then. */
  private holdLoop(child: ChildProcess): void {
    const out = child.stdout as unknown as { ref?: () => void; unref?: () => void } | null;
    if (this.waiting.length > 0) out?.ref?.();
    else out?.unref?.();
  }

  private restart(): void {
    const child = this.child;
    if (child === undefined) return;
    child.stdin?.end();
    child.kill('SIGKILL');
  }

  /** Ends the launcher (EOF: it exits once its shims have ended); shims it forked keep running. */
  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
    this.child = undefined;
  }
}
