// `npm run bench:image [-- --json] [-- --quick] [-- --runs N] [-- --mb N]`
//
// Pull throughput of a ~100 MB image (busybox plus a layer of random, incompressible files)
// from Debian's docker-registry on loopback, side by side in one run:
//   shoal cold   — ImageStore.pull into an empty store (download, verify, gunzip, unpack, rename)
//   shoal warm   — the same pull again into that store (manifest only: every layer cached)
//   fetch+tar    — baseline: the same blobs fetched with Node's fetch and piped into GNU tar
//                  (`tar -xz`), no digest checks, no whiteouts: a plain download-and-extract
// Each runs --runs times; rows report the median.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import { ImageStore } from '../../worker/image/store.js';
import { buildTar, busyboxEntries, pushImage, startRegistry, type PushedImage, type RegistryFixture, type TarSpec } from '../../worker/testing/registry.js';
import { median } from '../stats.js';

const FILE_BYTES = 4 << 20;
const RUNS_MAX = 20;

interface Args {
  json: boolean;
  runs: number;
  megabytes: number;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { json: false, runs: 3, megabytes: 100 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (): number => {
      const v = Number.parseInt(argv[++i] ?? '', 10);
      if (!Number.isFinite(v) || v < 1) throw new Error(`${arg} needs a positive number`);
      return v;
    };
    if (arg === '--json') a.json = true;
    else if (arg === '--quick') {
      a.megabytes = 20;
      a.runs = 1;
    } else if (arg === '--runs') a.runs = Math.min(RUNS_MAX, value());
    else if (arg === '--mb') a.megabytes = value();
    else throw new Error(`unknown argument ${arg} (known: --json --quick --runs N --mb N)`);
  }
  return a;
}

interface Row {
  readonly bench: 'image-pull';
  readonly system: string;
  readonly cache: 'cold' | 'warm';
  readonly layers: number;
  readonly payload_bytes: number;
  readonly runs: number;
  readonly seconds: number;
  readonly mb_per_s: number;
  readonly rss_mb: number;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function fetchIntoTar(url: string, dest: string): Promise<void> {
  const res = await fetch(url);
  if (!res.ok || res.body === null) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const tar = spawn('tar', ['-xz', '-C', dest], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => tar.once('exit', resolve));
  await pipeline(Readable.fromWeb(res.body as ReadableStream<Uint8Array>), tar.stdin);
  const code = await exited;
  if (code !== 0) throw new Error(`tar exited with ${code}`);
}

async function buildImage(reg: RegistryFixture, megabytes: number): Promise<PushedImage> {
  const files: TarSpec[] = [{ type: 'dir', path: 'data' }];
  const total = megabytes << 20;
  for (let i = 0, left = total; left > 0; i++, left -= FILE_BYTES) {
    files.push({ type: 'file', path: `data/random-${i}.bin`, content: randomBytes(Math.min(FILE_BYTES, left)) });
  }
  return pushImage(reg, {
    repository: 'bench/big',
    tag: 'v1',
    layers: [buildTar(await busyboxEntries()), buildTar(files)],
    // Random data does not compress: level 1 keeps the push quick and the blob the same size.
    gzipLevel: 1,
  });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const reg = await startRegistry();
  const scratch = await mkdtemp(join(tmpdir(), 'shoal-bench-image-'));
  const rows: Row[] = [];
  try {
    const image = await buildImage(reg, args.megabytes);
    const ref = `${reg.host}/bench/big:v1`;
    const row = (system: string, cache: 'cold' | 'warm', seconds: number[]): Row => {
      const s = median(seconds);
      return {
        bench: 'image-pull',
        system,
        cache,
        layers: image.layerDigests.length,
        payload_bytes: image.layerBytes,
        runs: seconds.length,
        seconds: Number(s.toFixed(3)),
        mb_per_s: Number((image.layerBytes / (1 << 20) / s).toFixed(1)),
        rss_mb: Math.round(process.memoryUsage().rss / (1 << 20)),
      };
    };

    const cold: number[] = [];
    const warm: number[] = [];
    const baseline: number[] = [];
    for (let run = 0; run < args.runs; run++) {
      const root = join(scratch, `store-${run}`);
      const store = await ImageStore.open({ root, dockerHubFallback: false });
      cold.push(await timed(async () => void (await store.pull(ref))));
      warm.push(await timed(async () => void (await store.pull(ref))));
      await rm(root, { recursive: true, force: true });

      const dest = join(scratch, `tar-${run}`);
      baseline.push(
        await timed(async () => {
          await mkdir(dest, { recursive: true });
          for (const digest of image.layerDigests) await fetchIntoTar(`http://${reg.host}/v2/bench/big/blobs/${digest}`, dest);
        }),
      );
      await rm(dest, { recursive: true, force: true });
    }
    rows.push(row('shoal', 'cold', cold), row('shoal', 'warm', warm), row('fetch+tar', 'cold', baseline));
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await reg.stop();
  }

  if (args.json) {
    console.log(JSON.stringify(rows));
    return;
  }
  const header = ['system', 'cache', 'layers', 'payload_bytes', 'runs', 'seconds (median)', 'MB/s'];
  const lines = rows.map((r) => [r.system, r.cache, String(r.layers), String(r.payload_bytes), String(r.runs), r.seconds.toFixed(3), r.mb_per_s.toFixed(1)]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const fmt = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ');
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
  const shoalCold = rows[0];
  const tar = rows[2];
  if (shoalCold !== undefined && tar !== undefined) console.log(`\nshoal cold pull / fetch+tar: ${(shoalCold.seconds / tar.seconds).toFixed(2)}x`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
