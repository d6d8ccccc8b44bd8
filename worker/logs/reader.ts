// Reading a task's log files (worker/executor/task-log.ts writes them: JSON lines `{ts,stream,line}`
// in `log`, rotated to `log.1`…): the lines already there, filtered by stream, time and tail, and
// then what is appended afterwards (follow), across a rotation.
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

import type { LogEntry, LogStream } from '../executor/task-log.js';
import { DEFAULT_TASK_LOG_OPTIONS } from '../executor/task-log.js';

export interface LogFilter {
  readonly streams: ReadonlySet<LogStream>;
  /** Lines from this time on (Unix ms); 0: all. */
  readonly sinceMs: number;
  /** The last N lines only; negative: all. */
  readonly tail: number;
}

/** Most bytes read from one file in one go (a follow poll reads the rest next time). */
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

export function entryMatches(e: LogEntry, f: Pick<LogFilter, 'streams' | 'sinceMs'>): boolean {
  if (!f.streams.has(e.stream)) return false;
  return f.sinceMs <= 0 || Date.parse(e.ts) >= f.sinceMs;
}

function parseLines(text: string, out: LogEntry[]): void {
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      // A line cut by a crash mid-write: skipped.
    }
  }
}

/** Reads `path` from `offset` up to its last complete line (at most READ_CHUNK_BYTES); null when it does not exist. */
function readFrom(path: string, offset: number): { text: string; next: number; ino: number; size: number } | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    const want = Math.max(0, Math.min(st.size - offset, READ_CHUNK_BYTES));
    const buf = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const n = readSync(fd, buf, got, want - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    const end = buf.lastIndexOf(0x0a, got - 1);
    const used = end < 0 ? 0 : end + 1;
    return { text: buf.subarray(0, used).toString('utf8'), next: offset + used, ino: st.ino, size: st.size };
  } finally {
    closeSync(fd);
  }
}

/**
 * Follows one task's log: `snapshot()` returns what is there now (filtered), then each `poll()`
 * returns the lines appended since. A rotation between polls is noticed by the inode of `log`
 * changing: the rest of the old file (now `log.1`) is read first.
 */
export class TaskLogFollower {
  private ino = 0;
  private offset = 0;

  constructor(
    readonly path: string,
    private readonly filter: LogFilter,
    private readonly maxFiles: number = DEFAULT_TASK_LOG_OPTIONS.maxFiles,
  ) {}

  /** The lines already written (rotated files first), filtered and tailed; following starts after them. */
  snapshot(): LogEntry[] {
    const all: LogEntry[] = [];
    for (let i = this.maxFiles - 1; i >= 1; i--) {
      let offset = 0;
      // Bounded: each round reads up to READ_CHUNK_BYTES of a file of at most maxBytes.
      for (let round = 0; round < 1024; round++) {
        const r = readFrom(`${this.path}.${i}`, offset);
        if (r === null || r.next === offset) break;
        parseLines(r.text, all);
        offset = r.next;
      }
    }
    for (let round = 0; round < 1024; round++) {
      const r = readFrom(this.path, this.offset);
      if (r === null) break;
      this.ino = r.ino;
      if (r.next === this.offset) break;
      parseLines(r.text, all);
      this.offset = r.next;
    }
    const matching = all.filter((e) => entryMatches(e, this.filter));
    return this.filter.tail >= 0 ? matching.slice(Math.max(0, matching.length - this.filter.tail)) : matching;
  }

  /** Lines appended since the last call (at most a few MiB; the rest comes next time). */
  poll(): LogEntry[] {
    const out: LogEntry[] = [];
    let st;
    try {
      st = statSync(this.path);
    } catch {
      return out;
    }
    if (this.ino !== 0 && st.ino !== this.ino) {
      // Rotated: finish the old file, which is log.1 now (if it was not rotated twice meanwhile).
      try {
        if (statSync(`${this.path}.1`).ino === this.ino) {
          const r = readFrom(`${this.path}.1`, this.offset);
          if (r !== null) parseLines(r.text, out);
        }
      } catch {
        // Gone: those lines are lost to this reader.
      }
      this.offset = 0;
    } else if (st.size < this.offset) {
      this.offset = 0; // truncated in place
    }
    this.ino = st.ino;
    const r = readFrom(this.path, this.offset);
    if (r !== null) {
      parseLines(r.text, out);
      this.offset = r.next;
    }
    return out.filter((e) => entryMatches(e, this.filter));
  }
}
