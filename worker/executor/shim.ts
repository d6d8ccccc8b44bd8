// The per-container shim: a tiny `sh` process, in its own session, that runs `runc run` in the
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
import { spawn } from 'node:child_process';
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
} as const;

// $1 task dir, $2 runc binary, $3 runc root, $4 container id, $5 `now` to run at once.
// The shim is spawned during prepare and waits for a `start` line on ack.fifo, so start() costs one
// write instead of a process spawn; any other line (or EOF) cancels it. fd 5 holds ack.fifo open
// (read-write, so the open never blocks) for its whole life: after the status file is written the
// shim waits on it again until the executor has seen the status, keeping the log FIFOs (and
// whatever the container wrote last) alive while no executor runs.
const SHIM_SCRIPT = [
  'd="$1"; runc="$2"; root="$3"; id="$4"',
  'exec </dev/null 3<>"$d/stdout.fifo" 4<>"$d/stderr.fifo" 5<>"$d/ack.fifo" || exit 111',
  'if [ "$5" != now ]; then read -r cmd <&5; [ "$cmd" = start ] || exit 0; fi',
  '"$runc" --root "$root" --log "$d/runc.log" --log-format json run --keep --bundle "$d/bundle" --pid-file "$d/pid" "$id" >&3 2>&4 3>&- 4>&- 5>&-',
  'code=$?',
  'printf \'%s\\n\' "$code" >"$d/exit.tmp" && mv -f "$d/exit.tmp" "$d/exit"',
  'read -r _ <&5',
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

/** Starts the shim detached (own session, no pipes to us); `now` runs runc at once instead of waiting for `start`. */
export function spawnShim(taskDir: string, runcBinary: string, runcRoot: string, containerId: string, now: boolean): { pid: number; exited: Promise<void> } {
  const logFd = openSync(join(taskDir, TASK_FILES.shimLog), 'a', 0o640);
  try {
    const child = spawn('sh', ['-c', SHIM_SCRIPT, 'shoal-shim', taskDir, runcBinary, runcRoot, containerId, now ? 'now' : 'wait'], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    child.unref();
    if (child.pid === undefined) throw new Error('could not start the shim (sh)');
    return { pid: child.pid, exited };
  } finally {
    closeSync(logFd);
  }
}
