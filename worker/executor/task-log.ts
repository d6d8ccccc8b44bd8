// A task's stdout and stderr as JSON lines `{"ts","stream","line"}` in `log`, rotated to `log.1`…
// `log.<maxFiles-1>` when it would pass maxBytes. The container writes into two FIFOs its shim holds
// open; the executor reads them (non-blocking, through libuv's pipe handle, so a hundred idle tasks
// occupy no threads) and appends here. A later executor process reopens the same FIFOs and appends
// to the same file.
import { appendFileSync, closeSync, constants, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { Socket } from 'node:net';

export type LogStream = 'stdout' | 'stderr';

export interface LogEntry {
  /** RFC 3339 with milliseconds, UTC. */
  readonly ts: string;
  readonly stream: LogStream;
  readonly line: string;
  /** Set when a line longer than the line limit was cut into pieces (all but the last piece). */
  readonly partial?: true;
}

export interface TaskLogOptions {
  /** Size of `log` before it rotates. */
  readonly maxBytes: number;
  /** Files kept, `log` included (≥ 1). */
  readonly maxFiles: number;
  /** Longer lines are cut into pieces of this many characters (Docker: 16 KiB). */
  readonly maxLineChars: number;
}

export const DEFAULT_TASK_LOG_OPTIONS: TaskLogOptions = { maxBytes: 10 * 1024 * 1024, maxFiles: 3, maxLineChars: 16 * 1024 };

/** Appends entries to a size-capped, rotated JSON-lines file. */
export class TaskLogWriter {
  private size: number;

  constructor(
    readonly path: string,
    private readonly opts: TaskLogOptions = DEFAULT_TASK_LOG_OPTIONS,
  ) {
    this.size = fileSize(path);
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    let text = '';
    for (const e of entries) text += `${JSON.stringify(e)}\n`;
    const bytes = Buffer.byteLength(text);
    if (this.size > 0 && this.size + bytes > this.opts.maxBytes) this.rotate();
    appendFileSync(this.path, text, { mode: 0o640 });
    this.size += bytes;
  }

  private rotate(): void {
    const keep = Math.max(1, this.opts.maxFiles);
    if (keep === 1) {
      rmSync(this.path, { force: true });
    } else {
      rmSync(`${this.path}.${keep - 1}`, { force: true });
      for (let i = keep - 2; i >= 1; i--) renameIfExists(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      renameIfExists(this.path, `${this.path}.1`);
    }
    this.size = 0;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Every entry of a task's log, oldest first (rotated files included). */
export function readTaskLog(path: string, maxFiles = DEFAULT_TASK_LOG_OPTIONS.maxFiles): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = maxFiles - 1; i >= 0; i--) {
    let text: string;
    try {
      text = readFileSync(i === 0 ? path : `${path}.${i}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) if (line !== '') out.push(JSON.parse(line) as LogEntry);
  }
  return out;
}

/**
 * Reads one FIFO into the writer, line by line. `ended` resolves once every writer has closed the FIFO
 * (the container and its shim are gone) and the remainder was written.
 */
export class FifoLogReader {
  readonly ended: Promise<void>;
  private readonly socket: Socket;
  private pending = '';
  private keeperFd: number | undefined;

  constructor(
    fifoPath: string,
    private readonly stream: LogStream,
    private readonly writer: TaskLogWriter,
    private readonly maxLineChars: number = DEFAULT_TASK_LOG_OPTIONS.maxLineChars,
  ) {
    // (libuv opens with O_CLOEXEC, so neither fd leaks into the shim.)
    // Opening read-only without a writer would read EOF at once: hold a write end of our own until
    // the shim's is there (releaseKeeper).
    this.keeperFd = openSync(fifoPath, constants.O_RDWR);
    const fd = openSync(fifoPath, constants.O_RDONLY | constants.O_NONBLOCK);
    this.socket = new Socket({ fd, readable: true, writable: false });
    this.socket.setEncoding('utf8');
    this.ended = new Promise((resolve) => {
      this.socket.on('data', (chunk: string) => this.onData(chunk));
      this.socket.on('error', () => undefined);
      this.socket.on('close', () => {
        this.flush(true);
        resolve();
      });
    });
  }

  /** Drops our own write end: from now on EOF means the shim and the container have closed theirs. */
  releaseKeeper(): void {
    if (this.keeperFd === undefined) return;
    closeSync(this.keeperFd);
    this.keeperFd = undefined;
  }

  /** Stops reading (the executor closes); the FIFO keeps what the container writes until a new reader comes. */
  close(): void {
    this.releaseKeeper();
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.pending += chunk;
    this.flush(false);
  }

  private flush(final: boolean): void {
    const entries: LogEntry[] = [];
    const ts = new Date().toISOString();
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      this.pushLine(entries, ts, this.pending.slice(0, nl));
      this.pending = this.pending.slice(nl + 1);
    }
    if (final && this.pending !== '') {
      this.pushLine(entries, ts, this.pending);
      this.pending = '';
    } else if (this.pending.length >= this.maxLineChars) {
      this.pushLine(entries, ts, this.pending, true);
      this.pending = '';
    }
    try {
      this.writer.append(entries);
    } catch {
      // A full disk must not take the executor down; the lines are lost, as with Docker's json-file.
    }
  }

  private pushLine(entries: LogEntry[], ts: string, line: string, trailingPartial = false): void {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    for (let at = 0; at < text.length || at === 0; at += this.maxLineChars) {
      const piece = text.slice(at, at + this.maxLineChars);
      const last = at + this.maxLineChars >= text.length;
      entries.push(last && !trailingPartial ? { ts, stream: this.stream, line: piece } : { ts, stream: this.stream, line: piece, partial: true });
      if (text.length === 0) break;
    }
  }
}
