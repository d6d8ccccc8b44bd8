// The lab's operations: up, down, ls, exec, env, kill, start, partition, heal. Each lab is a set of
// "hosts" (network namespaces on the lab's bridge), each running its own shoald, plus a registry on
// the bridge. See cli/README.md for the layout.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../client/api-client.js';
import { CliError } from '../errors.js';
import { isProcessAlive } from '../proc.js';
import { REPO_ROOT, startDaemon } from './launch.js';
import {
  REGISTRY_PORT,
  bridgeName,
  checkLabName,
  forwardChain,
  gatewayOf,
  hostAddress,
  isLabHostName,
  labId,
  planHosts,
  preferredSubnetIndex,
  resolveHostName,
  subnetOf,
  vethName,
  vethPrefix,
} from './naming.js';
import {
  clearPartition,
  createBridge,
  createHostNetns,
  deleteLink,
  deleteNetns,
  dropFrom,
  installForwardChain,
  linkExists,
  listLinks,
  listNetns,
  netnsPids,
  overlapsAny,
  removeForwardChain,
  chainExists,
  unmountUnder,
  usedCidrs,
  mountsUnder,
} from './net.js';
import { seedBusybox, startLabRegistry } from './registry.js';
import { daemonRunning, labDir, listLabNames, readState, releaseSubnets, reserveSubnet, writeState, type LabHost, type LabState, type ProcessRef } from './state.js';
import { runcRootOf } from '../daemon/worker/node-agent.js';
import { formSwarm } from './swarm.js';
import { runCommand } from './sys.js';

const DAEMON_READY_TIMEOUT_MS = 45_000;
const STOP_GRACE_MS = 3_000;
const GONE_TIMEOUT_MS = 5_000;
const POLL_MS = 100;
const REQUIRED_TOOLS: readonly [string, string][] = [
  ['ip', 'iproute2'],
  ['iptables', 'iptables'],
  ['nsenter', 'util-linux'],
  ['docker-registry', 'docker-registry'],
  ['busybox', 'busybox-static'],
];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new CliError('ERR_LAB', 'shoal lab needs root (it creates network namespaces, a bridge and iptables rules)');
}

async function checkTools(): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of REQUIRED_TOOLS) {
    if ((await runCommand('sh', ['-c', `command -v ${cmd}`])).code !== 0) missing.push(`${cmd} (Debian package ${pkg})`);
  }
  if (missing.length > 0) throw new CliError('ERR_LAB', `missing ${missing.join(', ')}: run scripts/setup.sh (npm run lab does)`);
}

function logTail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Loads a lab's state; a clear error when there is no such lab. */
export function loadLab(root: string, name: string): LabState {
  checkLabName(name);
  const state = readState(labDir(root, name));
  if (state === undefined) {
    const others = listLabNames(root).filter((n) => n !== name);
    throw new CliError('ERR_LAB', `no lab named "${name}"${others.length > 0 ? ` (labs: ${others.join(', ')})` : ''}: start one with 'shoal lab up --name ${name}'`);
  }
  return state;
}


async function waitGone(ref: ProcessRef, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isProcessAlive(ref.pid, ref.startTime || undefined)) return true;
    await sleep(POLL_MS);
  }
  return !isProcessAlive(ref.pid, ref.startTime || undefined);
}

function signal(ref: ProcessRef, sig: NodeJS.Signals): void {
  if (!isProcessAlive(ref.pid, ref.startTime || undefined)) return;
  try {
    process.kill(ref.pid, sig);
  } catch {
    // exited meanwhile
  }
}

/** SIGTERM, a short grace, then SIGKILL. True when it was running. */
async function stopProcess(ref: ProcessRef | undefined): Promise<boolean> {
  if (ref === undefined || !isProcessAlive(ref.pid, ref.startTime || undefined)) return false;
  signal(ref, 'SIGTERM');
  if (!(await waitGone(ref, STOP_GRACE_MS))) {
    signal(ref, 'SIGKILL');
    await waitGone(ref, GONE_TIMEOUT_MS);
  }
  return true;
}

async function waitForDaemon(host: LabHost): Promise<void> {
  const client = new ApiClient(`unix://${host.socket}`);
  const deadline = Date.now() + DAEMON_READY_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      if (host.daemon !== undefined && !isProcessAlive(host.daemon.pid, host.daemon.startTime || undefined)) {
        throw new CliError('ERR_LAB', `shoald of ${host.name} exited during start-up; its log (${host.logFile}) ends:\n${logTail(host.logFile)}`);
      }
      try {
        const res = await client.raw('GET', '/_ping');
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(POLL_MS);
    }
    throw new CliError('ERR_LAB', `shoald of ${host.name} did not answer /_ping within ${DAEMON_READY_TIMEOUT_MS / 1000} s; its log (${host.logFile}) ends:\n${logTail(host.logFile)}`);
  } finally {
    client.close();
  }
}

// ---- up ------------------------------------------------------------------------------------

export interface LabUpOptions {
  readonly root: string;
  readonly name: string;
  readonly managers: number;
  readonly workers: number;
  /** Progress lines (one per step). */
  readonly progress?: (line: string) => void;
}

export async function labUp(opts: LabUpOptions): Promise<LabState> {
  requireRoot();
  checkLabName(opts.name);
  const plan = planHosts(opts.name, opts.managers, opts.workers);
  await checkTools();
  const progress = opts.progress ?? (() => undefined);
  const dir = labDir(opts.root, opts.name);
  if (readState(dir) !== undefined) {
    throw new CliError('ERR_LAB', `lab "${opts.name}" already exists: use it (shoal lab ls --name ${opts.name}) or remove it first (shoal lab down --name ${opts.name})`);
  }
  const leftovers = await findLeftovers(opts.name);
  if (leftovers.length > 0) {
    throw new CliError('ERR_LAB', `parts of an earlier lab "${opts.name}" are still there (${leftovers.join(', ')}): run 'shoal lab down --name ${opts.name}' first`);
  }

  const used = await usedCidrs();
  const preferred = preferredSubnetIndex(opts.name);
  let subnetIndex: number | undefined;
  for (let k = 0; k < 256 && subnetIndex === undefined; k++) {
    const idx = (preferred + k) % 256;
    if (overlapsAny(subnetOf(idx), used)) continue;
    if (reserveSubnet(opts.root, idx, opts.name)) subnetIndex = idx;
  }
  if (subnetIndex === undefined) throw new CliError('ERR_LAB', 'no free /24 left in 10.231.0.0/16 for a lab: take other labs down');

  const state: LabState = {
    version: 1,
    name: opts.name,
    id: labId(opts.name),
    dir,
    subnetIndex,
    subnet: subnetOf(subnetIndex),
    gateway: gatewayOf(subnetIndex),
    bridge: bridgeName(opts.name),
    forwardChain: forwardChain(opts.name),
    createdAt: new Date().toISOString(),
    phase: 'creating',
    hosts: plan.map((h) => ({
      ...h,
      address: hostAddress(subnetIndex as number, h),
      netns: h.name,
      veth: vethName(opts.name, h.short),
      dataRoot: join(dir, h.short, 'data'),
      socket: join(dir, h.short, 'shoald.sock'),
      logFile: join(dir, h.short, 'shoald.log'),
    })),
    registry: { dir: join(dir, 'registry'), logFile: join(dir, 'registry', 'registry.log') },
    partitions: [],
  };
  writeState(state); // before anything is made: `lab down` knows what to look for

  try {
    progress(`bridge ${state.bridge} with ${state.subnet}`);
    await createBridge(state.bridge, state.gateway);
    await installForwardChain(state.forwardChain, state.bridge);

    progress(`registry on ${state.gateway}`);
    const registry = await startLabRegistry(state.registry, state.gateway, REGISTRY_PORT);
    state.registry.address = registry.address;
    state.registry.process = registry.process;
    writeState(state);
    await seedBusybox(registry.address);

    progress(`hosts ${state.hosts.map((h) => h.name).join(', ')}`);
    for (const host of state.hosts) await createHostNetns(host.netns, host.veth, state.bridge, host.address);

    for (const host of state.hosts) {
      host.daemon = startDaemon(state, host);
      writeState(state);
    }
    progress('waiting for the daemons');
    await Promise.all(state.hosts.map((h) => waitForDaemon(h)));

    const swarm = await formSwarm(state);
    state.swarm = swarm;
    state.phase = 'up';
    writeState(state);
    return state;
  } catch (err) {
    state.phase = 'failed';
    writeState(state);
    const message = err instanceof Error ? err.message : String(err);
    await labDown({ root: opts.root, name: opts.name }).catch(() => undefined);
    throw new CliError('ERR_LAB', `lab up failed (everything it made was removed): ${message}`);
  }
}

async function findLeftovers(name: string): Promise<string[]> {
  const found: string[] = [];
  if (await linkExists(bridgeName(name))) found.push(`bridge ${bridgeName(name)}`);
  for (const ns of await listNetns()) if (isLabHostName(name, ns)) found.push(`namespace ${ns}`);
  if (await chainExists(forwardChain(name))) found.push(`iptables chain ${forwardChain(name)}`);
  return found;
}

// ---- down ----------------------------------------------------------------------------------

export interface LabDownOptions {
  readonly root: string;
  readonly name: string;
}

/** PIDs of processes whose command line mentions `dir/` (daemons and registry of a lab whose state was lost). */
function processesMentioning(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(`${dir}/`)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Removes everything of lab `name`; returns what was removed (empty when there was nothing). */
export async function labDown(opts: LabDownOptions): Promise<string[]> {
  requireRoot();
  checkLabName(opts.name);
  const dir = labDir(opts.root, opts.name);
  let state: LabState | undefined;
  try {
    state = readState(dir);
  } catch {
    state = undefined; // unreadable: sweep by name
  }
  const removed: string[] = [];

  // 1. Processes: the daemons and the registry (by recorded PID and start time), then anything
  //    else still running in the lab's namespaces or started with the lab's paths.
  const refs: [string, ProcessRef | undefined][] = [
    ...(state?.hosts ?? []).map((h): [string, ProcessRef | undefined] => [`shoald ${h.name}`, h.daemon]),
    ['registry', state?.registry.process],
  ];
  const stopped = await Promise.all(refs.map(async ([what, ref]) => ((await stopProcess(ref)) ? what : undefined)));
  removed.push(...stopped.filter((s): s is string => s !== undefined).map((s) => `process ${s}`));
  const netnsNames = new Set<string>((state?.hosts ?? []).map((h) => h.netns));
  for (const ns of await listNetns()) if (isLabHostName(opts.name, ns)) netnsNames.add(ns);
  const stray = new Set<number>(processesMentioning(dir));
  for (const ns of netnsNames) for (const pid of await netnsPids(ns)) stray.add(pid);
  for (const pid of stray) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
      removed.push(`process ${pid}`);
    } catch {
      // gone
    }
  }
  for (const pid of stray) await waitGone({ pid, startTime: '' }, GONE_TIMEOUT_MS);

  // 1b. Containers a SIGKILLed daemon left running (a daemon that stops normally removes its
  //     own): every host's runc root under the lab directory; then their task namespaces.
  for (const host of hostDirs(dir)) {
    const runcRoot = runcRootOf(join(dir, host, 'data'));
    for (const id of await runcContainers(runcRoot)) if (await runcDelete(runcRoot, id)) removed.push(`container ${id}`);
  }
  const hostNames = new Set([...(state?.hosts ?? []).map((h) => h.name), ...netnsNames]);
  for (const ns of await listNetns()) for (const h of hostNames) if (ns.startsWith(`shoal-${h}-`)) netnsNames.add(ns);

  // 2. Mounts left under the lab directory (a SIGKILLed daemon can leave some).
  for (const m of await unmountUnder(dir)) removed.push(`mount ${m}`);

  // 3. Namespaces (their eth0 goes with them), host veths, the bridge.
  for (const ns of netnsNames) if (await deleteNetns(ns)) removed.push(`namespace ${ns}`);
  const prefix = vethPrefix(opts.name);
  for (const link of await listLinks()) if (link.startsWith(prefix) && (await deleteLink(link))) removed.push(`veth ${link}`);
  const bridge = state?.bridge ?? bridgeName(opts.name);
  if ((await linkExists(bridge)) && (await deleteLink(bridge))) removed.push(`bridge ${bridge}`);

  // 4. The FORWARD chain.
  const chain = state?.forwardChain ?? forwardChain(opts.name);
  if (await removeForwardChain(chain)) removed.push(`iptables chain ${chain}`);

  // 5. The subnet reservation and the lab directory (only once nothing is mounted under it).
  releaseSubnets(opts.root, opts.name);
  const stillMounted = mountsUnder(dir);
  if (stillMounted.length > 0) throw new CliError('ERR_LAB', `cannot remove ${dir}: still mounted: ${stillMounted.join(', ')}`);
  let existed = false;
  try {
    readdirSync(dir);
    existed = true;
  } catch {
    // no directory
  }
  if (existed) {
    rmSync(dir, { recursive: true, force: true });
    removed.push(`directory ${dir}`);
  }
  return removed;
}

/** The per-host directories of a lab (m1, w1, …), whether or not the state file survived. */
function hostDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

async function runcContainers(runcRoot: string): Promise<string[]> {
  const r = await runCommand('runc', ['--root', runcRoot, 'list', '-q']);
  return r.code === 0 ? r.stdout.split('\n').filter((l) => l.trim() !== '') : [];
}

async function runcDelete(runcRoot: string, id: string): Promise<boolean> {
  const r = await runCommand('runc', ['--root', runcRoot, 'delete', '--force', id]);
  return r.code === 0;
}

// ---- per-host operations --------------------------------------------------------------------

export function hostEnv(host: LabHost): Record<string, string> {
  return { DOCKER_HOST: `unix://${host.socket}`, SHOAL_HOST: `unix://${host.socket}` };
}

/** Runs `argv` in the host's network namespace with its daemon as DOCKER_HOST/SHOAL_HOST; resolves with its exit code. */
export function labExec(state: LabState, hostArg: string, argv: readonly string[]): Promise<number> {
  requireRoot();
  const host = resolveHostName(state.name, state.hosts, hostArg);
  if (argv.length === 0) throw new CliError('ERR_USAGE', 'lab exec needs a command after "--" (e.g. shoal lab exec lab-m1 -- ip -4 addr)');
  const env = { ...process.env, ...hostEnv(host), PATH: `${join(REPO_ROOT, 'bin')}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=/run/netns/${host.netns}`, '--', ...argv], { stdio: 'inherit', env });
    child.once('error', (err) => reject(new CliError('ERR_LAB', `could not run ${argv[0] ?? ''} in ${host.name}: ${err.message}`)));
    child.once('exit', (code, sig) => resolve(code ?? (sig !== null ? 128 + (constants.signals[sig] ?? 0) : 1)));
  });
}

export async function labKill(state: LabState, hostArg: string): Promise<string> {
  requireRoot();
  const host = resolveHostName(state.name, state.hosts, hostArg);
  if (host.daemon === undefined || !daemonRunning(host)) return `shoald of ${host.name} is not running`;
  const ref = host.daemon;
  signal(ref, 'SIGKILL');
  if (!(await waitGone(ref, GONE_TIMEOUT_MS))) throw new CliError('ERR_LAB', `shoald of ${host.name} (pid ${ref.pid}) did not die within ${GONE_TIMEOUT_MS} ms of SIGKILL`);
  return `killed shoald of ${host.name} (pid ${ref.pid}, SIGKILL)`;
}

export async function labStart(state: LabState, hostArg: string): Promise<string> {
  requireRoot();
  const host = resolveHostName(state.name, state.hosts, hostArg);
  if (daemonRunning(host)) return `shoald of ${host.name} is already running (pid ${host.daemon?.pid ?? '?'})`;
  host.daemon = startDaemon(state, host);
  writeState(state);
  await waitForDaemon(host);
  return `started shoald of ${host.name} (pid ${host.daemon.pid})`;
}

export async function labPartition(state: LabState, sideA: readonly string[], sideB: readonly string[]): Promise<string> {
  requireRoot();
  if (sideA.length === 0 || sideB.length === 0) throw new CliError('ERR_USAGE', 'usage: shoal lab partition HOST... -- HOST... (hosts on each side of the cut)');
  const a = sideA.map((h) => resolveHostName(state.name, state.hosts, h));
  const b = sideB.map((h) => resolveHostName(state.name, state.hosts, h));
  const both = a.filter((h) => b.includes(h));
  if (both.length > 0) throw new CliError('ERR_USAGE', `a host cannot be on both sides of a partition: ${both.map((h) => h.name).join(', ')}`);
  for (const h of a) await dropFrom(h.netns, b.map((x) => x.address));
  for (const h of b) await dropFrom(h.netns, a.map((x) => x.address));
  state.partitions.push([a.map((h) => h.name), b.map((h) => h.name)]);
  writeState(state);
  return `partitioned ${a.map((h) => h.name).join(' ')} | ${b.map((h) => h.name).join(' ')}`;
}

export async function labHeal(state: LabState): Promise<string> {
  requireRoot();
  let healed = 0;
  for (const h of state.hosts) if (await clearPartition(h.netns)) healed++;
  state.partitions = [];
  writeState(state);
  return healed === 0 ? 'no partition to heal' : `healed: removed the partition rules from ${healed} host${healed === 1 ? '' : 's'}`;
}
