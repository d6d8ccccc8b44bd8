// Task logs: JSON lines with rotation, and reading a real FIFO line by line until every writer is gone.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FifoLogReader, readTaskLog, TaskLogWriter } from './task-log.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-tasklog-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const entry = (line: string) => ({ ts: '2026-01-01T00:00:00.000Z', stream: 'stdout' as const, line });

describe('TaskLogWriter', () => {
  it('rotates at maxBytes and keeps maxFiles files, oldest dropped', async () => {
    const path = join(dir, 'log');
    const w = new TaskLogWriter(path, { maxBytes: 200, maxFiles: 3, maxLineChars: 100 });
    for (let i = 0; i < 20; i++) w.append([entry(`line ${i}`)]);
    expect((await readdir(dir)).sort()).toEqual(['log', 'log.1', 'log.2']);
    const lines = readTaskLog(path, 3).map((e) => e.line);
    expect(lines.at(-1)).toBe('line 19');
    expect(lines.length).toBeLessThan(20);
    // What is kept is a contiguous, ordered tail.
    const first = Number(lines[0]?.split(' ')[1]);
    expect(lines).toEqual(Array.from({ length: 20 - first }, (_, i) => `line ${first + i}`));
  });

  it('a new writer on the same file appends and counts the existing size', () => {
    const path = join(dir, 'log');
    new TaskLogWriter(path).append([entry('a')]);
    new TaskLogWriter(path).append([entry('b')]);
    expect(readTaskLog(path).map((e) => e.line)).toEqual(['a', 'b']);
  });
});

describe('FifoLogReader', () => {
  it('reads lines from a FIFO until its writers close, splitting long lines and keeping a last partial line', async () => {
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    const path = join(dir, 'log');
    const reader = new FifoLogReader(fifo, 'stderr', new TaskLogWriter(path), 10);
    const writer = spawn('sh', ['-c', `exec 3<>"$0"; printf 'one\\r\\ntwo\\n0123456789abcdef\\nno newline' >&3`, fifo], { stdio: 'ignore' });
    await new Promise((r) => writer.once('exit', r));
    reader.releaseKeeper();
    await reader.ended;
    expect(readTaskLog(path)).toEqual([
      expect.objectContaining({ stream: 'stderr', line: 'one' }),
      expect.objectContaining({ line: 'two' }),
      expect.objectContaining({ line: '0123456789', partial: true }),
      expect.objectContaining({ line: 'abcdef' }),
      expect.objectContaining({ line: 'no newline' }),
    ]);
  });
});
