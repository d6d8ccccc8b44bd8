// Child process for crash.test.ts: appends entries to a DurableLog as fast as it can and
// prints one line per durable batch, until it is killed (SIGKILL) or reaches its bound.
//   ack <lastIndex>      every entry ≤ lastIndex is durable
//   snap <index>         a snapshot at index is durable and entries before it are compacted
// Entry i's content is a pure function of i (expectedEntry), so the parent can check it.
import { DurableLog } from './durable-log.js';
import { expectedEntry, mulberry32 } from './crash-shared.js';

const [dir, seedArg] = process.argv.slice(2);
const dekHex = process.env['SHOAL_TEST_DEK'];
if (dir === undefined || seedArg === undefined || dekHex === undefined) {
  process.stderr.write('usage: SHOAL_TEST_DEK=<hex> crash-writer <dir> <seed>\n');
  process.exit(2);
}
const MAX_BATCHES = 5000;
const rand = mulberry32(Number(seedArg));
const log = await DurableLog.open(dir, { dek: Buffer.from(dekHex, 'hex') });
let last = log.memory.lastIndex();
process.stdout.write(`open ${last}\n`);
for (let b = 1; b <= MAX_BATCHES; b++) {
  const n = 1 + Math.floor(rand() * 16);
  const entries = [];
  for (let i = last + 1; i <= last + n; i++) entries.push(expectedEntry(i));
  await log.save({ hardState: { term: 1, vote: 1, commit: last + n }, entries, snapshot: null, mustSync: true });
  last += n;
  process.stdout.write(`ack ${last}\n`);
  if (b % 25 === 0) {
    const at = last - Math.floor(rand() * 8);
    await log.createSnapshot(at, { voters: [1], learners: [] }, Buffer.from(`snapshot ${at}`));
    await log.compact(at);
    process.stdout.write(`snap ${at}\n`);
  }
}
await log.close();
