// The load client, run as its own process so it competes for CPU the same way against both
// systems: `concurrency` async workers share one connection (one TCP connection for Shoal,
// one gRPC channel for etcd), each doing one put at a time with an 8-byte sequential key and a
// fixed random value, until `total` puts are done. A warm-up pass runs first, unmeasured.
// Prints one JSON line of RunFigures.
import { randomBytes } from 'node:crypto';
import { credentials, Client as GrpcClient, type ServiceError } from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { ShoalClient } from './client-protocol.js';
import { summarize, type RunFigures } from './stats.js';

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
  /** etcd only: the npm `etcd3` client, or a bare grpc-js channel calling KV/Put (a leaner client). */
  readonly etcdClient: 'etcd3' | 'grpc';
}

/** protobuf PutRequest { bytes key = 1; bytes value = 2; } — the two fields the bench sets. */
function encodePutRequest(key: Buffer, value: Buffer): Buffer {
  const field = (tag: number, b: Buffer): Buffer[] => {
    const len: number[] = [];
    let n = b.byteLength;
    while (n >= 0x80) {
      len.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    len.push(n);
    return [Buffer.from([tag, ...len]), b];
  };
  return Buffer.concat([...field(0x0a, key), ...field(0x12, value)]);
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
  } else if (cfg.etcdClient === 'grpc') {
    const client = new GrpcClient(`127.0.0.1:${cfg.port}`, credentials.createInsecure());
    const identity = (b: Buffer): Buffer => b;
    put = (key, val) =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest('/etcdserverpb.KV/Put', identity, identity, encodePutRequest(key, val), (err: ServiceError | null) =>
          err ? reject(err) : resolve(),
        );
      });
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
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const errors = await drive(put, cfg.total, cfg.concurrency, cfg.keyBase, value, latencies);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
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
    // The client's own CPU per put: the two systems' clients differ (a small framed protocol
    // against gRPC over HTTP/2), and on a small machine the client competes with the servers.
    const figures: RunFigures = { ...summarize(ok, seconds, errors), client_cpu_us_per_op: Math.round((cpu.user + cpu.system) / cfg.total) };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
