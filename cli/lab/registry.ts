// The lab's registry: Debian's `docker-registry` listening on the bridge address, seeded with a
// `busybox` image made from Debian's `busybox-static`. The image is built and pushed with the image
// store's registry helpers (worker/testing/registry.ts), with every busybox applet linked in /bin
// so that `sleep`, `ping`, `wget`, `httpd`... work in lab services.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../errors.js';
import { isProcessAlive, readProcStat } from '../proc.js';
import { buildTar, busyboxEntries, pushImage, type PushTarget, type TarSpec } from '../../worker/image/push.js';
import type { LabRegistry, ProcessRef } from './state.js';

const REGISTRY_START_TIMEOUT_MS = 20_000;
const POLL_MS = 100;
/** Repositories the seed image is pushed to: Docker Hub's name (for the mirror) and a short one. */
export const SEED_REPOSITORIES = ['library/busybox', 'busybox'] as const;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function registryConfig(storageDir: string, addr: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${addr}`,
    '  secret: shoal-lab',
    '',
  ].join('\n');
}

/** Starts the registry detached (it outlives this CLI process); resolves when it answers /v2/. */
export async function startLabRegistry(reg: LabRegistry, bindIp: string, port: number): Promise<{ address: string; process: ProcessRef }> {
  mkdirSync(reg.dir, { recursive: true });
  const tries = port === 0 ? [0] : [port, 0]; // a taken port 5000 falls back to any free port
  let lastError = '';
  for (const p of tries) {
    const configPath = join(reg.dir, 'config.yml');
    writeFileSync(configPath, registryConfig(join(reg.dir, 'data'), `${bindIp}:${p}`));
    const logFd = openSync(reg.logFile, 'w');
    const child = spawn('docker-registry', ['serve', configPath], { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new CliError('ERR_LAB', `could not start docker-registry: ${(await spawnError).message} (install Debian's docker-registry: npm run lab does)`);
    const startTime = readProcStat(pid)?.startTime ?? '';
    const deadline = Date.now() + REGISTRY_START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const log = readFileSync(reg.logFile, 'utf8');
      const m = new RegExp(`listening on ${bindIp.replace(/\./g, '\\.')}:(\\d+)`).exec(log);
      if (m !== null) {
        const address = `${bindIp}:${m[1] as string}`;
        if (await answers(address)) return { address, process: { pid, startTime } };
      }
      if (!isProcessAlive(pid, startTime)) {
        lastError = log.trim().split('\n').slice(-3).join(' | ');
        break;
      }
      await sleep(POLL_MS);
    }
    if (isProcessAlive(pid, startTime)) {
      process.kill(pid, 'SIGKILL');
      lastError = `no answer within ${REGISTRY_START_TIMEOUT_MS} ms`;
    }
  }
  throw new CliError('ERR_LAB', `the lab registry did not start on ${bindIp}: ${lastError} (log: ${reg.logFile})`);
}

async function answers(address: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

function allApplets(): string[] {
  const r = spawnSync('busybox', ['--list'], { encoding: 'utf8' });
  if (r.status !== 0) throw new CliError('ERR_LAB', "busybox --list failed: install Debian's busybox-static (npm run lab does)");
  return r.stdout.split('\n').map((s) => s.trim()).filter((s) => /^[a-z0-9._[-]+$/i.test(s) && s !== 'busybox');
}

/** The lab registry has no auth: pushes need only its address. */
function pushTarget(address: string): PushTarget {
  return { directHost: address, pushAuthorization: () => undefined };
}

/** Pushes `busybox:latest` (one layer: busybox-static with every applet) under SEED_REPOSITORIES. */
export async function seedBusybox(address: string): Promise<string> {
  const entries: TarSpec[] = await busyboxEntries();
  const present = new Set(entries.map((e) => e.path));
  for (const applet of allApplets()) {
    if (!present.has(`bin/${applet}`)) entries.push({ type: 'symlink', path: `bin/${applet}`, target: 'busybox' });
  }
  const layer = buildTar(entries);
  let digest = '';
  for (const repository of SEED_REPOSITORIES) {
    const pushed = await pushImage(pushTarget(address), { repository, tag: 'latest', layers: [layer], config: { Cmd: ['sh'] } });
    digest = pushed.manifestDigest;
  }
  return digest;
}
