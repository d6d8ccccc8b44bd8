// The load client, run as its own process so it competes for CPU the same way against both
// systems: `concurrency` async workers share one connection (one TCP connection for Shoal,
// one gRPC channel for etcd), each doing one put at a time with an 8-byte sequential key and a
// fixed random value, until `total` puts are done. A warm-up pass runs first, unmeasured.
// Prints one JSON line of RunFigures.
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { ShoalClient } from './client-protocol.js';
import { summarize } from './stats.js';

export interface LoadConfig {
  readonly system: 'shoal' | 'etcd';
  /** Port of the leader's client endpoint on 127.0.0.1. */
  readonly port: number;
  readonly total: number;
  readonly concurrency: number;
  readonly payloadBytes: number;
  readonly warmup: number;
  /** First key number, so successive runs write fresh keys. */
  readonly keyBase: number;
}

type Put = (key: Buffer, value: Buffer) => Promise<void>;

async function drive(put: Put, count: number, concurrency: number, keyBase: number, value: Buffer, latencies: Float64Array | null): Promise<number> {
  let next = 0;
  let errors = 0;
  let firstError: unknown = null;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const key = Buffer.allocUnsafe(8);
      key.writeBigUInt64BE(BigInt(keyBase + i));
      const t0 = performance.now();
      try {
        await put(key, value);
        if (latencies !== null) latencies[i] = performance.now() - t0;
      } catch (err) {
        errors++;
        firstError ??= err;
        if (latencies !== null) latencies[i] = NaN;
        if (errors > Math.max(10, count / 100)) throw new Error(`too many failed puts (${errors}); first: ${(firstError as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return errors;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '') as LoadConfig;
  const value = randomBytes(cfg.payloadBytes);
  let put: Put;
  let close: () => void;
  if (cfg.system === 'shoal') {
    const client = await ShoalClient.connect(cfg.port);
    put = (key, val) => client.put(Buffer.concat([key, val]));
    close = () => client.close();
  } else {
    const client = new Etcd3({ hosts: `http://127.0.0.1:${cfg.port}` });
    put = async (key, val) => {
      await client.put(key).value(val);
    };
    close = () => client.close();
  }
  try {
    await drive(put, cfg.warmup, cfg.concurrency, cfg.keyBase + cfg.total, value, null);
    const latencies = new Float64Array(cfg.total);
    const t0 = performance.now();
    const errors = await drive(put, cfg.total, cfg.concurrency, cfg.keyBase, value, latencies);
    const seconds = (performance.now() - t0) / 1000;
    const ok = latencies.filter((x) => !Number.isNaN(x));
    if (process.env['BENCH_RAFT_SLOW_MS'] !== undefined) {
      // Debug aid: where in the run the slow operations fell (index:ms), on stderr.
      const limit = Number(process.env['BENCH_RAFT_SLOW_MS']);
      const slow: string[] = [];
      latencies.forEach((l, i) => {
        if (l > limit) slow.push(`${i}:${l.toFixed(0)}`);
      });
      process.stderr.write(`slow (> ${limit} ms): ${slow.length} ${slow.slice(0, 200).join(' ')}\n`);
    }
    process.stdout.write(`${JSON.stringify(summarize(ok, seconds, errors))}\n`);
  } finally {
    close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
