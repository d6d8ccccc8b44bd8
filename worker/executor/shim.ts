// The per-container shim: a tiny `sh` process (forked by the executor's `sh` launcher, in the
// launcher's own session, no tty), that runs `runc run` in the
// foreground and writes runc's exit status (the container init's exit code, 128+N for signal N) to a
// file when it ends. Why a shim, and why `runc run` rather than `runc create`+`start`:
//  - Only the parent of the container's init learns its exit status. After `runc create` the init is
//    reparented to PID 1 (which reaps late here) and the status is lost; Node cannot become a child
//    subreaper (no prctl). `runc run` in the foreground makes runc itself a subreaper that waits for
//    the init and exits with its status; the shim keeps that status on disk.
//  - The shim outlives the executor: a restarted shoald finds the status file (or a running container)
//    instead of a lost child. An `sh` shim costs ~1 MB and a fork, not a Node process (~40 MB, 100 ms).
//  - The shim holds both log FIFOs open read-write, so the container never gets SIGPIPE while no
//    executor reads them (its writes wait in the pipe buffer instead). After the exit it lingers until
//    the executor acknowledges the status (ackShim), so output still in the pipes is not lost when the
//    container ends while no executor runs; then the executor reads EOF and knows it has everything.
//  - `--keep` leaves the stopped container (and its cgroup) in place, so the OOM-kill counter can be
//    read after the exit; `runc delete` at remove() clears it.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
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

// One shim per container, forked by a long-lived `sh` launcher (below) from a shell function:
// $1 task dir, $2 container id, $3 `now` to run at once (else wait for `start`), $4 directory to
// mount the overlay from and $5 its options (both empty: the root is mounted already).
// The shim makes the FIFOs itself (Node has no mkfifo(3)), mounts the root when asked, and creates
// shim.ready once it holds all three FIFOs (from then on a `start` written to ack.fifo reaches it),
// or shim.failed once the reason is in shim.why. Then it waits for its `start` line on ack.fifo;
// any other line (or EOF) cancels it. fd 5 holds ack.fifo open (read-write, so the open never
// blocks) for its whole life: after the status file is written the shim waits on it again until
// the executor has seen the status, keeping the log FIFOs (and whatever the container wrote last)
// alive while no executor runs.
const SHIM_FUNCTION = [
  'shim() {',
  '  d="$1"; id="$2"; mode="$3"; mcwd="$4"; mopts="$5"',
  '  exec </dev/null >>"$d/shim.log" 2>&1',
  '  [ -p "$d/ack.fifo" ] || mkfifo -m 600 "$d/stdout.fifo" "$d/stderr.fifo" "$d/ack.fifo"',
  '  [ -p "$d/stdout.fifo" ] && [ -p "$d/stderr.fifo" ] && [ -p "$d/ack.fifo" ] || { echo "mkfifo failed" >"$d/shim.why"; : >"$d/shim.failed"; exit 110; }',
  '  exec 3<>"$d/stdout.fifo" 4<>"$d/stderr.fifo" 5<>"$d/ack.fifo" || { echo "open FIFOs failed" >"$d/shim.why"; : >"$d/shim.failed"; exit 111; }',
  '  if [ -n "$mopts" ]; then',
  '    cd "$mcwd" && mount -t overlay overlay -o "$mopts" "$d/bundle/rootfs" || { echo "mount overlay on $d/bundle/rootfs failed" >"$d/shim.why"; : >"$d/shim.failed"; exit 112; }',
  '    cd /',
  '  fi',
  '  : >"$d/shim.ready"',
  '  if [ "$mode" != now ]; then read -r cmd <&5; [ "$cmd" = start ] || exit 0; fi',
  '  "$runc" --root "$root" --log "$d/runc.log" --log-format json run --keep --bundle "$d/bundle" --pid-file "$d/pid" "$id" >&3 2>&4 3>&- 4>&- 5>&-',
  '  code=$?',
  '  printf \'%s\\n\' "$code" >"$d/exit.tmp" && mv -f "$d/exit.tmp" "$d/exit"',
  '  read -r _ <&5',
  '}',
].join('\n');

// The launcher: reads one request per line (fields separated by \037: mode, task dir, container id,
// mount cwd, mount options), forks a shim for it, writes the shim's PID to shim.pid and answers
// with it on stdout. A fork of this small shell costs far less than a spawn from the daemon (which
// forks the whole Node process); EOF on stdin (the daemon went away) ends it, never its shims.
const LAUNCHER_SCRIPT = [
  'runc="$1"; root="$2"; us=$(printf \'\\037\')',
  SHIM_FUNCTION,
  'while IFS="$us" read -r mode d id mcwd mopts; do',
  '  ( shim "$d" "$id" "$mode" "$mcwd" "$mopts" ) &',
  '  echo "$!" >"$d/shim.pid"',
  '  echo "$!"',
  'done',
].join('\n');

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
 * Forks shims through one long-lived `sh` (own session, no tty; spawned at the first launch and
 * again if it dies). Its shims are children of that `sh` and outlive it and the daemon.
 */
export class ShimLauncher {
  private child: ChildProcess | undefined;
  private readonly waiting: { resolve(pid: number): void; reject(err: Error): void; timer: NodeJS.Timeout }[] = [];
  private buffered = '';
  private closed = false;

  constructor(
    private readonly runcBinary: string,
    private readonly runcRoot: string,
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
    const child = spawn('sh', ['-c', LAUNCHER_SCRIPT, 'shoal-shim-launcher', this.runcBinary, this.runcRoot], {
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

  /** Ends the launcher (EOF); shims it forked keep running. */
  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
    this.child = undefined;
  }
}
