// `npm run bench:vs-swarm [-- --json] [-- --quick] [-- --only task-start,converge,...]`
//
// Shoal and Docker swarm mode (Debian's dockerd 20.10) side by side, in one run, on this machine,
// through the same client code (the Docker Engine API on each system's unix socket) and the same
// busybox image served by a local registry. Single-node workloads (task start with the bare runc
// floor, convergence and memory, control-API writes, reads) run on a 1-host lab of each system;
// failover and rescheduling on a 3-manager + 1-worker lab of each. Prints one table with the ratio
// Shoal/Docker per row, or with --json one array of rows. Everything it made is removed at the end,
// also after a failure or Ctrl-C. Progress goes to stderr.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerSystem } from './docker-system.js';
import { renderTable, type BenchName, type Row } from './report.js';
import { ShoalSystem } from './shoal-system.js';
import type { SystemUnderTest } from './system.js';
import { convergeAndMemory, failover, FULL, QUICK, reschedule, runcFloor, taskStart, writesAndReads } from './workloads.js';

const REPO = join(import.meta.dirname, '..', '..');
const ALL: readonly BenchName[] = ['task-start', 'converge', 'memory', 'config-writes', 'service-writes', 'reads', 'failover', 'reschedule'];
const NEED: Readonly<Record<string, string>> = { dockerd: 'docker.io', docker: 'docker.io', 'docker-registry': 'docker-registry', busybox: 'busybox-static', runc: 'runc', nsenter: 'util-linux', ip: 'iproute2', iptables: 'iptables' };

interface Args {
  json: boolean;
  quick: boolean;
  build: boolean;
  only: Set<BenchName>;
  systems: Set<'shoal' | 'docker-swarm'>;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { json: false, quick: false, build: true, only: new Set(ALL), systems: new Set(['shoal', 'docker-swarm']) };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--json') a.json = true;
    else if (arg === '--quick') a.quick = true;
    else if (arg === '--no-build') a.build = false;
    else if (arg === '--only') {
      const names = (argv[++i] ?? '').split(',').filter((s) => s !== '');
      for (const n of names) if (!ALL.includes(n as BenchName)) throw new Error(`--only: unknown workload "${n}" (known: ${ALL.join(', ')})`);
      a.only = new Set(names as BenchName[]);
    } else if (arg === '--systems') {
      const names = (argv[++i] ?? '').split(',').filter((s) => s !== '');
      for (const n of names) if (n !== 'shoal' && n !== 'docker-swarm') throw new Error(`--systems: unknown system "${n}" (shoal, docker-swarm)`);
      a.systems = new Set(names as ('shoal' | 'docker-swarm')[]);
    } else throw new Error(`unknown argument ${arg} (known: --json --quick --no-build --only LIST --systems LIST)`);
  }
  return a;
}

function log(msg: string): void {
  process.stderr.write(`[vs-swarm ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function installMissing(): void {
  const missing = new Set<string>();
  for (const [cmd, pkg] of Object.entries(NEED)) if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) missing.add(pkg);
  if (missing.size === 0) return;
  log(`installing ${[...missing].join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): number | null => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: ['ignore', 'inherit', 'inherit'], env }).status;
  if (install() !== 0) {
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (install() !== 0) throw new Error(`apt-get install ${[...missing].join(' ')} failed`);
  }
}

const active = new Set<SystemUnderTest>();
let labRoot = '';

async function downAll(): Promise<void> {
  for (const s of [...active]) {
    log(`taking down ${s.name}`);
    await s.down();
    active.delete(s);
  }
}

async function withSystem(name: 'shoal' | 'docker-swarm', managers: number, workers: number, body: (s: SystemUnderTest) => Promise<void>): Promise<void> {
  log(`${name}: bringing up ${managers} manager(s) and ${workers} worker(s)`);
  const tag = `${managers}${workers}`;
  const sys: SystemUnderTest = name === 'shoal' ? await ShoalSystem.up(labRoot, `vsbench${tag}`, managers, workers) : await DockerSystem.up(`vs${tag}`, managers, workers);
  active.add(sys);
  try {
    await body(sys);
  } finally {
    log(`${name}: taking the lab down`);
    await sys.down();
    active.delete(sys);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench:vs-swarm needs root (network namespaces, daemons, runc)');
  const sizes = args.quick ? QUICK : FULL;
  installMissing();
  if (args.build) {
    log('building Shoal (tsc -p tsconfig.build.json)');
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
    } catch (err) {
      if (!existsSync(join(REPO, 'dist', 'cli', 'shoal.js'))) throw err;
      log('the build reported type errors; continuing with what it emitted (as npm run lab does)');
    }
  }
  labRoot = mkdtempSync(join(tmpdir(), 'vs-swarm-labs-'));
  const rows: Row[] = [];
  const want = (b: BenchName): boolean => args.only.has(b);
  const order = (['shoal', 'docker-swarm'] as const).filter((s) => args.systems.has(s));

  if (want('task-start')) {
    log('runc floor');
    rows.push(await runcFloor(sizes.startTrials));
  }
  if (['task-start', 'converge', 'memory', 'config-writes', 'service-writes', 'reads'].some((b) => want(b as BenchName))) {
    for (const name of order) {
      await withSystem(name, 1, 0, async (sys) => {
        const host = sys.hosts[0];
        if (host === undefined) throw new Error('no host');
        if (want('task-start')) {
          log(`${name}: task start × ${sizes.startTrials}`);
          rows.push(await taskStart(sys, host, sizes.startTrials));
        }
        if (want('converge') || want('memory')) {
          log(`${name}: converge 0 → ${sizes.converge[0]} → ${sizes.converge[1]}, memory`);
          rows.push(...(await convergeAndMemory(sys, host, sizes.converge)).filter((r) => want(r.bench)));
        }
        if (want('config-writes') || want('service-writes') || want('reads')) {
          log(`${name}: writes and reads`);
          rows.push(...(await writesAndReads(sys, host, sizes)).filter((r) => want(r.bench)));
        }
      });
    }
  }
  if (want('failover') || want('reschedule')) {
    for (const name of order) {
      await withSystem(name, 3, 1, async (sys) => {
        if (want('failover')) {
          log(`${name}: failover × ${sizes.failoverTrials}`);
          rows.push(await failover(sys, sizes.failoverTrials));
        }
        if (want('reschedule')) {
          log(`${name}: reschedule × ${sizes.rescheduleTrials}`);
          rows.push(await reschedule(sys, sizes.rescheduleTrials));
        }
      });
    }
  }
  if (args.json) console.log(JSON.stringify(rows));
  else {
    console.log(`bench:vs-swarm${args.quick ? ' (--quick)' : ''}, ${new Date().toISOString().slice(0, 10)}: headline figure per workload, shoal/docker ratio`);
    console.log(renderTable(rows));
  }
}

function onSignal(sig: NodeJS.Signals): void {
  log(`${sig}: cleaning up`);
  void downAll().finally(() => {
    if (labRoot !== '') rmSync(labRoot, { recursive: true, force: true });
    process.exit(130);
  });
}
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

main()
  .catch(async (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
    await downAll();
  })
  .finally(() => {
    if (labRoot !== '') rmSync(labRoot, { recursive: true, force: true });
  });
