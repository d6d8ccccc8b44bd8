// bench:ca — node certificates issued per second by one CA over real gRPC + TLS 1.3 on loopback.
//   ca-issue  IssueNodeCertificate(token, CSR): the join-time call, server-authenticated TLS
//             (a joiner has no certificate yet); CSRs made before the clock starts
//   ca-renew  RenewNodeCertificate(CSR) over mutual TLS with each client's node certificate
//   ca-join   a whole join: new connections, GetRootCACertificate, digest check, key + CSR, issue
// Each of `concurrency` clients keeps one call in flight on its own channel. The CA runs in a child
// process; the clients (and their CPU) in this one.
// Usage: npm run bench:ca [-- --seconds 5 --concurrency 16 --json]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

import { createNodeCsr, generateNodeKey } from '../../ca/csr.js';
import type { NodeIdentity } from '../../ca/identity.js';
import { joinCluster } from '../../ca/join.js';
import { CAClient } from '../../proto/gen/shoal/ca.js';
import { callUnary } from '../../proto/grpc/client.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, joinChannelCredentials } from '../../proto/grpc/tls.js';
import { percentile } from '../stats.js';

interface Row {
  readonly bench: string;
  readonly system: 'shoal';
  readonly concurrency: number;
  readonly seconds: number;
  readonly ops: number;
  readonly ops_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly rss_mb: number;
  /** CA process CPU per certificate: what the CA could issue per second on one free core is 1000 / this. */
  readonly ca_cpu_ms_per_op: number;
}

const argv = await yargs(hideBin(process.argv))
  .option('seconds', { type: 'number', default: 5, describe: 'measured seconds per workload' })
  .option('concurrency', { type: 'number', default: 16 })
  .option('json', { type: 'boolean', default: false })
  .strict()
  .parse();

const MAX_OPS_PER_CLIENT = 1_000_000;

/** Runs `op` in `concurrency` loops for `seconds`, after a 1-second warm-up. */
async function measure(name: string, concurrency: number, seconds: number, op: (client: number) => Promise<void>): Promise<Row> {
  const cpuBefore = { us: 0 };
  const warmEnd = Date.now() + 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, c) => {
      for (let i = 0; i < MAX_OPS_PER_CLIENT && Date.now() < warmEnd; i++) await op(c);
    }),
  );
  const latencies: number[] = [];
  cpuBefore.us = await serverCpuUs();
  const start = performance.now();
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, c) => {
      for (let i = 0; i < MAX_OPS_PER_CLIENT && Date.now() < end; i++) {
        const t = performance.now();
        await op(c);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsedS = (performance.now() - start) / 1000;
  const cpuMs = (await serverCpuUs() - cpuBefore.us) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    bench: name,
    system: 'shoal',
    concurrency,
    seconds: Math.round(elapsedS * 100) / 100,
    ops: latencies.length,
    ops_per_s: Math.round(latencies.length / elapsedS),
    p50_ms: Math.round(percentile(latencies, 50) * 100) / 100,
    p99_ms: Math.round(percentile(latencies, 99) * 100) / 100,
    rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
    ca_cpu_ms_per_op: latencies.length === 0 ? 0 : Math.round((cpuMs / latencies.length) * 1000) / 1000,
  };
}

interface ServerInfo {
  readonly address: string;
  readonly workerToken: string;
}

const server = fork(fileURLToPath(new URL('./server-process.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx', ...(process.env.CA_BENCH_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.CA_BENCH_PROFILE_DIR] : [])] });
const info = await new Promise<ServerInfo>((resolve, reject) => {
  server.once('message', (m) => resolve(m as ServerInfo));
  server.once('error', reject);
  server.once('exit', (code) => reject(new Error(`CA server process exited with ${code}`)));
});

/** Asks the CA process for its CPU time so far. */
function serverCpuUs(): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown): void => {
      if (typeof m === 'object' && m !== null && 'cpuUs' in m) {
        server.off('message', onMessage);
        resolve((m as { cpuUs: number }).cpuUs);
      }
    };
    server.on('message', onMessage);
    server.send('cpu');
  });
}

const { concurrency, seconds } = argv;
const rows: Row[] = [];
try {
  // Identities for the clients: one join each (also gives the trust bundle).
  const identities: NodeIdentity[] = await Promise.all(Array.from({ length: concurrency }, () => joinCluster({ address: info.address, token: info.workerToken })));
  const bundle = identities[0]?.trustBundlePem ?? '';

  // A pool of distinct CSRs per client, made before any clock runs (key generation is the node's cost).
  const CSRS_PER_CLIENT = 64;
  const csrs = await Promise.all(
    Array.from({ length: concurrency }, async () => Promise.all(Array.from({ length: CSRS_PER_CLIENT }, async () => createNodeCsr(await generateNodeKey())))),
  );
  const next = new Array<number>(concurrency).fill(0);
  const csrFor = (c: number): Buffer => {
    const pool = csrs[c] ?? [];
    next[c] = ((next[c] ?? 0) + 1) % CSRS_PER_CLIENT;
    return pool[next[c] ?? 0] ?? Buffer.alloc(0);
  };

  const joinClients = identities.map(() => new CAClient(info.address, joinChannelCredentials(bundle), CLUSTER_CHANNEL_OPTIONS));
  rows.push(
    await measure('ca-issue', concurrency, seconds, async (c) => {
      const client = joinClients[c];
      if (client === undefined) return;
      await callUnary(client.issueNodeCertificate.bind(client), { token: info.workerToken, csr: csrFor(c), addr: '' });
    }),
  );
  for (const c of joinClients) c.close();

  const mtlsClients = identities.map((id) => new CAClient(info.address, clusterChannelCredentials(id, id.clusterId), CLUSTER_CHANNEL_OPTIONS));
  rows.push(
    await measure('ca-renew', concurrency, seconds, async (c) => {
      const client = mtlsClients[c];
      if (client === undefined) return;
      await callUnary(client.renewNodeCertificate.bind(client), { csr: csrFor(c) });
    }),
  );
  for (const c of mtlsClients) c.close();

  rows.push(
    await measure('ca-join', concurrency, seconds, async () => {
      await joinCluster({ address: info.address, token: info.workerToken });
    }),
  );
} finally {
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.send('close');
  await exited;
}

if (argv.json) {
  console.log(JSON.stringify(rows));
} else {
  console.log('bench     system  concurrency  seconds   ops     ops/s   p50 ms   p99 ms  rss MB  CA cpu ms/op');
  for (const r of rows) {
    console.log(
      `${r.bench.padEnd(9)} ${r.system.padEnd(7)} ${String(r.concurrency).padStart(11)}  ${r.seconds.toFixed(2).padStart(7)} ${String(r.ops).padStart(6)} ${String(r.ops_per_s).padStart(9)} ${r.p50_ms.toFixed(2).padStart(8)} ${r.p99_ms.toFixed(2).padStart(8)} ${String(r.rss_mb).padStart(7)} ${r.ca_cpu_ms_per_op.toFixed(3).padStart(13)}`,
    );
  }
}
