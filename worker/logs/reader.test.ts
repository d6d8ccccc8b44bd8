// Reading task logs as the executor writes them (TaskLogWriter, with rotation): the snapshot filtered
// by stream, time and tail; then following appended lines, across a rotation and a late-created file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { TaskLogWriter, type LogEntry } from '../executor/task-log.js';
import { TaskLogFollower, type LogFilter } from './reader.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-logs-reader-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const entry = (n: number, stream: 'stdout' | 'stderr' = 'stdout'): LogEntry => ({ ts: new Date(Date.UTC(2026, 10, 25, 12, 0, n)).toISOString(), stream, line: `${stream}-${n}` });
const ALL: LogFilter = { streams: new Set(['stdout', 'stderr']), sinceMs: 0, tail: -1 };
const text = (es: readonly LogEntry[]): string[] => es.map((e) => e.line);

describe('TaskLogFollower', () => {
  it('snapshots rotated files first, filtered by stream, since and tail (tail over both streams, as docker)', () => {
    const path = join(dir, 'log');
    const w = new TaskLogWriter(path, { maxBytes: 200, maxFiles: 3, maxLineChars: 1024 });
    for (let i = 1; i <= 6; i++) w.append([entry(i), entry(i, 'stderr')]);
    const all = new TaskLogFollower(path, ALL).snapshot();
    // Rotation dropped the oldest; what is left is in order.
    const lines = text(all);
    expect(lines.at(-1)).toBe('stderr-6');
    expect(lines).toEqual([...lines].sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]) || 0));
    expect(text(new TaskLogFollower(path, { ...ALL, tail: 3 }).snapshot())).toEqual(['stderr-5', 'stdout-6', 'stderr-6']);
    expect(text(new TaskLogFollower(path, { ...ALL, streams: new Set(['stdout']), tail: 2 }).snapshot())).toEqual(['stdout-5', 'stdout-6']);
    expect(text(new TaskLogFollower(path, { ...ALL, sinceMs: Date.parse(entry(6).ts) }).snapshot())).toEqual(['stdout-6', 'stderr-6']);
    expect(new TaskLogFollower(path, { ...ALL, tail: 0 }).snapshot()).toEqual([]);
  });

  it('follows appended lines only, across a rotation, and a file that appears later', () => {
    const path = join(dir, 'log');
    const f = new TaskLogFollower(path, ALL);
    expect(f.snapshot()).toEqual([]);
    expect(f.poll()).toEqual([]);
    const w = new TaskLogWriter(path, { maxBytes: 150, maxFiles: 2, maxLineChars: 1024 });
    w.append([entry(1)]);
    expect(text(f.poll())).toEqual(['stdout-1']);
    expect(f.poll()).toEqual([]);
    // These two appends rotate `log` into `log.1` in between polls: nothing is lost or repeated.
    w.append([entry(2)]);
    w.append([entry(3)]);
    expect(text(f.poll())).toEqual(['stdout-2', 'stdout-3']);
    w.append([entry(4, 'stderr')]);
    expect(text(f.poll())).toEqual(['stderr-4']);
  });
});
