// Crash safety: a child process appends to the log and acknowledges each durable batch; we
// SIGKILL it at random points and check, on reopen, that everything acknowledged is intact.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { pino } from 'pino';
import { DurableLog } from './durable-log.js';
import { expectedEntry, mulberry32 } from './crash-shared.js';

const ROUNDS = 6;
const ROUND_TIMEOUT_MS = 30_000;
const WRITER = fileURLToPath(new URL('./crash-writer.fixture.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-raft-crash-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface RoundResult {
  acked: number;
  snapped: number;
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Runs the writer until it has acknowledged `killAfterAcks` batches, then SIGKILLs it after `delayMs`. */
function runRound(dek: Buffer, seed: number, killAfterAcks: number, delayMs: number): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(seed)], {
      cwd: REPO,
      env: { ...process.env, SHOAL_TEST_DEK: dek.toString('hex') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const res: RoundResult = { acked: 0, snapped: 0, signal: null, code: null, stderr: '' };
    let acks = 0;
    let buffered = '';
    let killing = false;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const guard = setTimeout(() => {
      kill();
      reject(new Error(`crash round with seed ${seed} did not reach ${killAfterAcks} acks in ${ROUND_TIMEOUT_MS} ms: ${res.stderr}`));
    }, ROUND_TIMEOUT_MS);
    child.stderr.setEncoding('utf8').on('data', (s: string) => (res.stderr += s));
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      buffered += s;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [what, n] = line.split(' ');
        if (what === 'ack') {
          res.acked = Number(n);
          acks++;
        } else if (what === 'snap') {
          res.snapped = Number(n);
        }
      }
      if (!killing && acks >= killAfterAcks) {
        killing = true;
        setTimeout(kill, delayMs);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      res.code = code;
      res.signal = signal;
      resolve(res);
    });
  });
}

it('every acknowledged entry survives SIGKILL at random points', async () => {
  const seed = Number(process.env['SHOAL_TEST_SEED'] ?? Date.now() % 1_000_000);
  const rand = mulberry32(seed);
  const dek = randomBytes(32);
  const logger = pino({ level: 'silent' });
  const ctx = `(replay with SHOAL_TEST_SEED=${seed})`;
  let ackedSoFar = 0;
  let snappedSoFar = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Round 0 runs long enough to pass the writer's first snapshot (every 25 batches).
    const killAfterAcks = (round === 0 ? 30 : 1) + Math.floor(rand() * 60);
    const delayMs = Math.floor(rand() * 15);
    const r = await runRound(dek, Math.floor(rand() * 2 ** 31), killAfterAcks, delayMs);
    expect(r.signal, `writer should die by SIGKILL, exited ${r.code}: ${r.stderr} ${ctx}`).toBe('SIGKILL');
    ackedSoFar = Math.max(ackedSoFar, r.acked);
    if (process.env['SHOAL_TEST_VERBOSE']) console.log({ round, killAfterAcks, delayMs, acked: r.acked, snapped: r.snapped });
    snappedSoFar = Math.max(snappedSoFar, r.snapped);

    const log = await DurableLog.open(dir, { dek, logger });
    try {
      const m = log.memory;
      const snap = m.snapshot();
      expect(m.lastIndex(), `round ${round}: acknowledged up to ${ackedSoFar} ${ctx}`).toBeGreaterThanOrEqual(ackedSoFar);
      expect(snap.metadata.index, `round ${round}: snapshot ${ctx}`).toBeGreaterThanOrEqual(snappedSoFar);
      expect(m.hard().commit, `round ${round}: commit ${ctx}`).toBeGreaterThanOrEqual(ackedSoFar);
      if (snap.metadata.index > 0) expect(Buffer.from(snap.data).toString()).toBe(`snapshot ${snap.metadata.index}`);
      expect(m.firstIndex()).toBe(snap.metadata.index + 1);
      // Every entry present is exactly what was written, acknowledged or not.
      for (const e of m.entries(m.firstIndex(), m.lastIndex() + 1, Infinity)) {
        const want = expectedEntry(e.index);
        expect({ term: e.term, type: e.type }, `entry ${e.index} ${ctx}`).toEqual({ term: want.term, type: want.type });
        expect(Buffer.from(e.data).equals(want.data as Buffer), `entry ${e.index} data ${ctx}`).toBe(true);
      }
    } finally {
      await log.close();
    }
  }
  expect(snappedSoFar, `a snapshot was taken and survived ${ctx}`).toBeGreaterThan(0);
  if (process.env['SHOAL_TEST_VERBOSE']) console.log({ seed, ackedSoFar, snappedSoFar });
});
