// Time per save() of the durable Raft log: one Ready of N entries of 256 B as one LevelDB
// batch, with and without fsync, against the same batch written to LevelDB raw (no codec,
// no AES-GCM) to show what sealing costs next to the disk.
//   npm run bench:raft-storage            a table
//   npm run bench:raft-storage -- --json  one JSON array of rows
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { pino } from 'pino';
import { DurableLog } from '../../raft/storage/index.js';
import { entryKey } from '../../raft/storage/keys.js';
import type { Entry } from '../../raft/types.js';
import { percentile } from '../stats.js';

const PAYLOAD_BYTES = 256;
const json = process.argv.includes('--json');

interface Row {
  bench: string;
  system: string;
  entries_per_batch: number;
  payload_bytes: number;
  sync: boolean;
  batches: number;
  seconds: number;
  ops_per_s: number;
  entries_per_s: number;
  p50_ms: number;
  p99_ms: number;
  rss_mb: number;
}

function row(system: string, perBatch: number, sync: boolean, lat: number[], seconds: number): Row {
  lat.sort((a, b) => a - b);
  return {
    bench: 'raft-storage-save',
    system,
    entries_per_batch: perBatch,
    payload_bytes: PAYLOAD_BYTES,
    sync,
    batches: lat.length,
    seconds: +seconds.toFixed(3),
    ops_per_s: Math.round(lat.length / seconds),
    entries_per_s: Math.round((lat.length * perBatch) / seconds),
    p50_ms: +percentile(lat, 50).toFixed(3),
    p99_ms: +percentile(lat, 99).toFixed(3),
    rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
  };
}

async function durable(perBatch: number, sync: boolean, batches: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-raftlog-'));
  const log = await DurableLog.open(dir, { dek: randomBytes(32), logger: pino({ level: 'silent' }) });
  try {
    const data = randomBytes(PAYLOAD_BYTES);
    let last = 0;
    const lat: number[] = [];
    const t0 = performance.now();
    for (let b = 0; b < batches; b++) {
      const entries: Entry[] = [];
      for (let i = 1; i <= perBatch; i++) entries.push({ term: 1, index: last + i, type: 'normal', data });
      const s = performance.now();
      await log.save({ hardState: { term: 1, vote: 1, commit: last }, entries, snapshot: null, mustSync: sync });
      lat.push(performance.now() - s);
      last += perBatch;
    }
    return row('shoal-durable-log', perBatch, sync, lat, (performance.now() - t0) / 1000);
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function rawLevel(perBatch: number, sync: boolean, batches: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-level-'));
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    const data = randomBytes(PAYLOAD_BYTES + 8);
    let last = 0;
    const lat: number[] = [];
    const t0 = performance.now();
    for (let b = 0; b < batches; b++) {
      const ops: { type: 'put'; key: Uint8Array; value: Uint8Array }[] = [];
      for (let i = 1; i <= perBatch; i++) ops.push({ type: 'put', key: entryKey(last + i), value: data });
      ops.push({ type: 'put', key: Uint8Array.of(0x68), value: data.subarray(0, 8) });
      const s = performance.now();
      await db.batch(ops, { sync });
      lat.push(performance.now() - s);
      last += perBatch;
    }
    return row('level-raw', perBatch, sync, lat, (performance.now() - t0) / 1000);
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
for (const perBatch of [1, 64]) {
  for (const sync of [true, false]) {
    const batches = sync ? 300 : 2000;
    rows.push(await rawLevel(perBatch, sync, batches));
    rows.push(await durable(perBatch, sync, batches));
  }
}
if (json) {
  process.stdout.write(JSON.stringify(rows) + '\n');
} else {
  console.table(rows.map(({ bench: _b, payload_bytes: _p, ...r }) => r));
}
