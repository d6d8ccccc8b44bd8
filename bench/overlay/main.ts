// npm run bench:overlay [-- --json] [-- --runs 3 --seconds 3 --pings 200 --cluster-runs 5 | --no-cluster | --cluster-only]
// Two "hosts" (network namespaces on a veth underlay), one container on each, joined two ways:
//   overlay — the Shoal data plane: veth → sandbox bridge → vxlan (UDP 4789) → underlay → … → container
//   veth    — a plain veth between the same two container namespaces
// Throughput: iperf3 TCP, container 1 → container 2, `seconds` per run, median of `runs` (paths interleaved).
// Latency: `pings` ICMP echoes at 10 ms intervals per path, p50/p99 of the per-echo RTT.
// Control plane: time of attach(), setServices() (one backend more) and setPeers() (one peer more).
// running-to-vip: the worker's network manager (worker/network) on each host gets the network view
// saying a new task on host B is RUNNING (what the dispatcher sends once the task reports RUNNING);
// time from handing it the view until a client on host A, connecting to the service VIP every ms
// (refused while the service has no running task), first gets an answer from the new task.
// cluster (cluster.ts, skipped with --no-cluster): the same end to end through a lab of 3 shoalds —
// from `service create` / a scale-up at the manager's API until the new task answers through the
// VIP, split at its RUNNING report.

import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { run } from '../../overlay/exec.js';
import { OverlayDataPlane } from '../../overlay/index.js';
import { NetnsLab } from '../../overlay/testing/netns-lab.js';
import type { NetworkPeers } from '../../manager/dispatcher/network-peers.js';
import type { Network, Task } from '../../manager/store/types.js';
import { VNI_OPTION, WorkerNetworks } from '../../worker/network/worker-networks.js';
import { median, round } from '../stats.js';
import { clusterToVip } from './cluster.js';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1]! : fallback;
}

const json = process.argv.includes('--json');
const runs = Number(option('runs', '3'));
const seconds = Number(option('seconds', '3'));
const pings = Number(option('pings', '200'));
const clusterRuns = process.argv.includes('--no-cluster') ? 0 : Number(option('cluster-runs', '5'));
const IPERF_PORT = 5201;
const IPERF_READY_TIMEOUT_MS = 10_000;

interface PathRow {
  readonly bench: 'overlay';
  readonly system: 'shoal';
  readonly path: 'overlay' | 'veth';
  readonly runs: number;
  readonly seconds: number;
  readonly mbit_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly pings: number;
  /** This path's figures divided by the veth path's (1 for veth). */
  readonly mbit_ratio_vs_veth: number;
  readonly p50_ratio_vs_veth: number;
}

interface ControlRow {
  readonly bench: 'overlay';
  readonly system: 'shoal';
  readonly path: 'control';
  readonly op: 'attach' | 'setServices' | 'setPeers' | 'running-to-vip';
  readonly ops: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
}

/** End to end through a lab (cluster.ts). */
interface ClusterRow {
  readonly bench: 'overlay';
  readonly system: 'shoal';
  readonly path: 'cluster';
  readonly op: 'create-to-vip' | 'create-to-running' | 'scale-to-vip' | 'scale-to-running' | 'running-to-vip';
  readonly nodes: number;
  readonly ops: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
}

type Row = PathRow | ControlRow | ClusterRow;

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function startIperfServer(netns: string): Promise<() => void> {
  const child = spawn('nsenter', [`--net=${netns}`, 'iperf3', '-s', '--forceflush', '-p', String(IPERF_PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('iperf3 server did not start')), IPERF_READY_TIMEOUT_MS);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('Server listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`iperf3 server exited ${code}`));
    });
  });
  return () => child.kill('SIGKILL');
}

async function iperfMbit(fromNetns: string, toIp: string): Promise<number> {
  const out = await run(['iperf3', '-c', toIp, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'], { netns: fromNetns, timeoutMs: seconds * 1000 + 20_000 });
  const report = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return report.end.sum_received.bits_per_second / 1e6;
}

async function pingRtts(fromNetns: string, toIp: string): Promise<number[]> {
  const verbose = await run(['ping', '-n', '-c', String(pings), '-i', '0.01', '-W', '2', toIp], { netns: fromNetns, timeoutMs: pings * 50 + 20_000 });
  return [...verbose.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

function clusterRows(c: Awaited<ReturnType<typeof clusterToVip>>): ClusterRow[] {
  const ops = [
    ['create-to-vip', c.createToVipMs], ['create-to-running', c.createToRunningMs], ['scale-to-vip', c.scaleToVipMs],
    ['scale-to-running', c.scaleToRunningMs], ['running-to-vip', c.runningToVipMs],
  ] as const;
  return ops.map(([op, values]) => {
    const sorted = [...values].sort((x, y) => x - y);
    return { bench: 'overlay', system: 'shoal', path: 'cluster', op, nodes: c.nodes, ops: values.length, p50_ms: round(quantile(sorted, 0.5), 1), p99_ms: round(quantile(sorted, 0.99), 1) };
  });
}

async function main(): Promise<void> {
  if (process.argv.includes('--cluster-only')) {
    print(clusterRows(await clusterToVip(clusterRuns, (line) => console.error(line))));
    return;
  }
  const lab = new NetnsLab(`shoalbench-ov${process.pid}`);
  const planes: OverlayDataPlane[] = [];
  let stopIperf: (() => void) | undefined;
  try {
    const hA = await lab.addNetns('hA');
    const hB = await lab.addNetns('hB');
    await lab.link(hA, 'ul0', '172.31.251.1', hB, 'ul0', '172.31.251.2', 24);
    const c1 = await lab.addNetns('c1');
    const c2 = await lab.addNetns('c2');
    await lab.link(c1, 'direct0', '192.168.251.1', c2, 'direct0', '192.168.251.2', 30);

    const net = { id: `benchnet${process.pid}`, name: 'bench', vni: 4500, subnet: '10.88.0.0/16', gateway: '10.88.0.1' };
    const a = new OverlayDataPlane({ hostTag: `ba${process.pid}`, underlayAddress: '172.31.251.1', underlayInterface: 'ul0', hostNetns: hA, upstreamResolvers: [] });
    const b = new OverlayDataPlane({ hostTag: `bb${process.pid}`, underlayAddress: '172.31.251.2', underlayInterface: 'ul0', hostNetns: hB, upstreamResolvers: [] });
    planes.push(a, b);
    const nA = await a.createNetwork(net);
    const nB = await b.createNetwork(net);
    await nA.attach({ id: 't1', containerNetns: c1, ifName: 'eth0', ip: '10.88.0.2' });
    await nB.attach({ id: 't2', containerNetns: c2, ifName: 'eth0', ip: '10.88.0.3' });
    const peers = [{ ip: '10.88.0.2', hostAddr: '172.31.251.1' }, { ip: '10.88.0.3', hostAddr: '172.31.251.2' }];
    await nA.setPeers(peers);
    await nB.setPeers(peers);

    stopIperf = await startIperfServer(c2);
    const targets = { overlay: '10.88.0.3', veth: '192.168.251.2' } as const;
    const mbit: Record<'overlay' | 'veth', number[]> = { overlay: [], veth: [] };
    await pingRtts(c1, targets.overlay); // warm ARP/FDB paths
    for (let r = 0; r < runs; r++) {
      for (const path of ['veth', 'overlay'] as const) mbit[path].push(await iperfMbit(c1, targets[path]));
    }
    const rtts = { veth: await pingRtts(c1, targets.veth), overlay: await pingRtts(c1, targets.overlay) };

    // Control-plane operations: extra endpoints and backends on host A, one at a time.
    const attachMs: number[] = [];
    const servicesMs: number[] = [];
    const peersMs: number[] = [];
    const CONTROL_OPS = 10;
    const backends: string[] = [];
    for (let i = 0; i < CONTROL_OPS; i++) {
      const ns = await lab.addNetns(`x${i}`);
      const ip = `10.88.1.${i + 10}`;
      attachMs.push(await timed(() => nA.attach({ id: `x${i}`, containerNetns: ns, ifName: 'eth0', ip })));
      backends.push(ip);
      servicesMs.push(await timed(() => nA.setServices([{ id: 'svc', name: 'svc', endpointMode: 'vip', vip: '10.88.255.1', backends }])));
      peers.push({ ip: `10.88.2.${i + 10}`, hostAddr: '172.31.251.2' });
      peersMs.push(await timed(() => nA.setPeers(peers)));
    }

    const runningToVipMs = await runningToVip(lab, hA, hB);

    const vethMbit = median(mbit.veth);
    const vethP50 = median(rtts.veth);
    const rows: Row[] = (['overlay', 'veth'] as const).map((path) => {
      const sorted = [...rtts[path]].sort((x, y) => x - y);
      const m = median(mbit[path]);
      const p50 = quantile(sorted, 0.5);
      return {
        bench: 'overlay', system: 'shoal', path, runs, seconds, mbit_s: round(m), p50_ms: round(p50, 3), p99_ms: round(quantile(sorted, 0.99), 3),
        pings: sorted.length, mbit_ratio_vs_veth: round(m / vethMbit, 3), p50_ratio_vs_veth: round(p50 / vethP50, 3),
      };
    });
    for (const [op, values] of [['attach', attachMs], ['setServices', servicesMs], ['setPeers', peersMs], ['running-to-vip', runningToVipMs]] as const) {
      const sorted = [...values].sort((x, y) => x - y);
      rows.push({ bench: 'overlay', system: 'shoal', path: 'control', op, ops: values.length, p50_ms: round(quantile(sorted, 0.5), 1), p99_ms: round(quantile(sorted, 0.99), 1) });
    }
    if (clusterRuns > 0) {
      // The two-host fixture is not needed any more: free it before the lab starts.
      stopIperf();
      stopIperf = undefined;
      for (const plane of planes.splice(0)) await plane.close();
      await lab.cleanup();
      rows.push(...clusterRows(await clusterToVip(clusterRuns, (line) => console.error(line))));
    }
    print(rows);
  } finally {
    stopIperf?.();
    for (const plane of planes) await plane.close().catch((e: unknown) => console.error('overlay bench cleanup:', e));
    await lab.cleanup();
  }
}

const VIP_POLLER = String.raw`
const net = require('node:net');
const [ip, port, limitMs] = process.argv.slice(1);
const deadline = Date.now() + Number(limitMs);
console.log('ready');
function attempt() {
  if (Date.now() > deadline) { console.log('timeout'); process.exit(0); }
  let data = '';
  const s = net.connect(Number(port), ip);
  const t = setTimeout(() => s.destroy(), 200);
  s.on('data', (d) => (data += d));
  s.on('end', () => { clearTimeout(t); if (data.trim() !== '') { console.log('hit ' + Date.now() + ' ' + data.trim()); process.exit(0); } setTimeout(attempt, 1); });
  s.on('error', () => { clearTimeout(t); setTimeout(attempt, 1); });
  s.on('close', () => {});
}
attempt();
`;

/** running-to-vip samples (ms), through one WorkerNetworks per host. */
async function runningToVip(lab: NetnsLab, hA: string, hB: string): Promise<number[]> {
  const SAMPLES = 8;
  const network: Network = {
    ID: `benchvip${process.pid}`, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '',
    Spec: { Name: 'benchvip', DriverConfiguration: { Name: 'overlay' } },
    DriverState: { Name: 'overlay', Options: { [VNI_OPTION]: '4501' } },
    IPAMOptions: { Configs: [{ Subnet: '10.89.0.0/24', Gateway: '10.89.0.1' }] },
  };
  const task = (id: string, addr: string): Task => ({
    ID: id, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Spec: {}, ServiceID: id === 'client' ? 'svcclient' : 'svc', Slot: 1, NodeID: '',
    Status: { Timestamp: '', State: 'assigned', Message: '' }, DesiredState: 'running', NetworksAttachments: [{ Network: network, Addresses: [addr] }],
  });
  const view = (backend: Task | undefined, running: boolean): NetworkPeers => ({
    ID: network.ID, Network: network, Nodes: [],
    Tasks: [
      { TaskID: 'client', ServiceID: 'svcclient', ServiceName: 'client', NodeID: 'a', NodeAddr: '172.31.251.1', Addresses: ['10.89.0.10/24'], Running: true },
      ...(backend === undefined ? [] : [{ TaskID: backend.ID, ServiceID: 'svc', ServiceName: 'svc', NodeID: 'b', NodeAddr: '172.31.251.2', Addresses: backend.NetworksAttachments![0]!.Addresses, Running: running }]),
    ],
    Services: [{ ServiceID: 'svc', ServiceName: 'svc', EndpointMode: 'vip', VirtualIP: '10.89.0.2/24' }],
  });
  const wA = new WorkerNetworks({ hostTag: `bva${process.pid}`, nodeId: 'a', hostNetns: hA, upstreamResolvers: [] });
  const wB = new WorkerNetworks({ hostTag: `bvb${process.pid}`, nodeId: 'b', hostNetns: hB, upstreamResolvers: [] });
  const samples: number[] = [];
  try {
    wA.setLocalAddress('172.31.251.1');
    wB.setLocalAddress('172.31.251.2');
    const client = (await wA.prepareTask(task('client', '10.89.0.10/24')))!.networkNamespacePath;
    for (let i = 0; i < SAMPLES; i++) {
      const backend = task(`backend${i}`, `10.89.0.${20 + i}/24`);
      const ns = (await wB.prepareTask(backend))!.networkNamespacePath;
      for (const w of [wA, wB]) w.setView(view(backend, false));
      const server = await lab.startNameServer(ns, 8080, backend.ID);
      const poller = await lab.startProgram(client, VIP_POLLER, ['10.89.0.2', '8080', '10000']);
      const hit = new Promise<number>((resolve, reject) => {
        let out = '';
        poller.stdout!.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /hit (\d+) (\S+)/.exec(out);
          if (m !== null) resolve(Number(m[1]));
          else if (out.includes('timeout')) reject(new Error('the VIP never answered'));
        });
      });
      await new Promise((r) => setTimeout(r, 50)); // the poller is being refused
      const started = Date.now();
      for (const w of [wA, wB]) w.setView(view(backend, true));
      samples.push((await hit) - started);
      server.kill('SIGKILL');
      for (const w of [wA, wB]) w.setView(view(undefined, false));
      await wB.releaseTask(backend.ID);
    }
  } finally {
    await wA.close().catch((e: unknown) => console.error('overlay bench cleanup:', e));
    await wB.close().catch((e: unknown) => console.error('overlay bench cleanup:', e));
  }
  return samples;
}

function print(rows: readonly Row[]): void {
  if (json) {
    console.log(JSON.stringify(rows));
    return;
  }
  if (rows.some((r) => r.path !== 'cluster')) printPaths(rows);
  const cluster = rows.filter((r): r is ClusterRow => r.path === 'cluster');
  if (cluster.length > 0) {
    console.log(`\nend to end on a lab of ${cluster[0]!.nodes} shoalds: API call → the new task answers through the VIP (ms)`);
    table([['op', 'samples', 'p50 ms', 'p99 ms'], ...cluster.map((r) => [r.op, String(r.ops), String(r.p50_ms), String(r.p99_ms)])]);
  }
}

function printPaths(rows: readonly Row[]): void {
  console.log(`overlay: TCP throughput (iperf3, ${seconds} s × ${runs}, median) and ICMP RTT (${pings} echoes) between two containers on two hosts`);
  const head = ['path', 'Mbit/s', 'p50 ms', 'p99 ms', 'Mbit/s ÷ veth', 'p50 ÷ veth'];
  const cells = [head];
  for (const r of rows) {
    if (r.path === 'control' || r.path === 'cluster') continue;
    cells.push([r.path, String(r.mbit_s), String(r.p50_ms), String(r.p99_ms), String(r.mbit_ratio_vs_veth), String(r.p50_ratio_vs_veth)]);
  }
  table(cells);
  console.log('\ncontrol operations on one host (ms)');
  const ctl = [['op', 'ops', 'p50 ms', 'p99 ms']];
  for (const r of rows) if (r.path === 'control') ctl.push([r.op, String(r.ops), String(r.p50_ms), String(r.p99_ms)]);
  table(ctl);
}

function table(cells: readonly (readonly string[])[]): void {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  for (const row of cells) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
