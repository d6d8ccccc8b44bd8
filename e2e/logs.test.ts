// `service logs` and `shoal exec` on a real lab (two managers, one worker; the first manager leads):
// a busybox service of 3 replicas writes numbered lines to stdout and to stderr, its tasks spread
// over the hosts; `shoal service logs` shows every task's lines with docker's `name.slot.task@host`
// prefix, stdout lines on stdout and stderr lines on stderr; the real docker CLI prints the same
// lines, also through the follower manager (which forwards to the leader's broker); `--tail N`
// gives the last N lines of each task's log; `-f` picks up a line written after it started and ends when
// the client is stopped; `shoal exec` returns the command's output and its exit code, through a
// service name and a task ID. The lab is always taken down.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabState } from '../cli/lab/state.js';
import { ensureCliBuilt } from './build-cli.js';
import { ok, pollUntil } from './support.js';

const REPO = join(import.meta.dirname, '..');
const SHOAL = [process.execPath, join(REPO, 'bin', 'shoal')];
const BUILD_TIMEOUT_MS = 240_000;
const POLL_MS = 250;
const WAIT_LIMIT_MS = 40_000;

type Host = LabState['hosts'][number];

let root: string | undefined;
let dockerConfig: string | undefined;

function shoal(args: readonly string[], host?: Host): SpawnSyncReturns<string> {
  const [node, ...pre] = SHOAL as [string, ...string[]];
  const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LAB_ROOT: root };
  if (host !== undefined) env['SHOAL_HOST'] = `unix://${host.socket}`;
  return spawnSync(node, [...pre, ...args], { cwd: REPO, encoding: 'utf8', env, timeout: 90_000 });
}

function docker(host: Host, args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync('docker', ['-H', `unix://${host.socket}`, ...args], { encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: dockerConfig }, timeout: 30_000 });
}


/** Polls `probe` until it returns a value (bounded); see pollUntil. */
function waitFor<T>(what: string, probe: () => T | undefined): Promise<T> {
  return pollUntil(what, probe, WAIT_LIMIT_MS, POLL_MS);
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-logs-'));
  dockerConfig = await mkdtemp(join(tmpdir(), 'shoal-e2e-docker-'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  if (dockerConfig !== undefined) await rm(dockerConfig, { recursive: true, force: true });
});

describe('service logs and exec on a lab', () => {
  const name = `e2l-${process.pid}`;
  let state: LabState | undefined;
  const hosts = (): Host[] => state!.hosts;
  const leader = (): Host => hosts()[0]!;
  const follower = (): Host => hosts()[1]!;
  /** task ID → `name.slot.task12@hostname` as docker prints it. */
  const prefixes = new Map<string, string>();

  beforeAll(async () => {
    const up = shoal(['lab', 'up', '--name', name, '--managers', '2', '--workers', '1']);
    expect(up.status, up.stderr + up.stdout).toBe(0);
    state = JSON.parse(readFileSync(join(root!, name, 'state.json'), 'utf8')) as LabState;
    // Each task writes out-1, err-1, out-2, err-2 and then sleeps; `touch /tmp/more` makes it write one more line.
    const script = 'for i in 1 2; do echo out-$i; sleep 0.1; echo err-$i >&2; sleep 0.1; done; while [ ! -e /tmp/more ]; do sleep 0.2; done; echo late-line; sleep 600';
    ok(docker(leader(), ['service', 'create', '--detach', '--name', 'lg', '--replicas', '3', 'busybox', 'sh', '-c', script]));
    const rows = await waitFor('3 running tasks on 3 hosts', () => {
      const out = lines(ok(docker(leader(), ['service', 'ps', 'lg', '--no-trunc', '--format', '{{.ID}}|{{.Name}}|{{.Node}}|{{.CurrentState}}'])));
      const parsed = out.map((l) => l.split('|') as [string, string, string, string]);
      const running = parsed.filter(([, , , st]) => st.startsWith('Running'));
      return running.length === 3 && new Set(running.map(([, , n]) => n)).size === 3 ? running : undefined;
    });
    for (const [id, taskName, node] of rows) prefixes.set(id, `${taskName}.${id.slice(0, 12)}@${node}`);
    // The lines are written at once; wait until every task's four are readable.
    await waitFor('every task logged its four lines', () => {
      const r = shoal(['service', 'logs', 'lg'], leader());
      return r.status === 0 && lines(r.stdout).length === 6 && lines(r.stderr).length === 6 ? true : undefined;
    });
  }, 180_000);

  afterAll(() => {
    shoal(['lab', 'down', '--name', name]); // also when a test failed
  }, 60_000);

  it('shoal service logs prints every task’s lines with the task prefix, stdout and stderr apart', () => {
    const r = shoal(['service', 'logs', 'lg'], leader());
    expect(r.status, r.stderr).toBe(0);
    const want = (stream: string): string[] => [...prefixes.values()].flatMap((p) => [1, 2].map((i) => `${p}    | ${stream}-${i}`)).sort();
    expect(lines(r.stdout).sort()).toEqual(want('out'));
    expect(lines(r.stderr).sort()).toEqual(want('err'));
  });

  it('the docker CLI prints the same lines, on the leader and through the follower', () => {
    const ours = shoal(['service', 'logs', 'lg'], leader());
    for (const h of [leader(), follower()]) {
      const theirs = docker(h, ['service', 'logs', 'lg']);
      expect(theirs.status, theirs.stderr).toBe(0);
      expect(lines(theirs.stdout).sort()).toEqual(lines(ours.stdout).sort());
      expect(lines(theirs.stderr).sort()).toEqual(lines(ours.stderr).sort());
    }
  });

  it('--tail N gives the last N lines of each task’s log (both streams counted); -t prefixes RFC 3339 timestamps; a task ID selects one task', () => {
    // The order of stdout and stderr lines in a task's log is the order the executor read its two
    // pipes in: take the expected tail from the log file on the task's host.
    const lastOf = (n: number): { out: string[]; err: string[] } => {
      const want = { out: [] as string[], err: [] as string[] };
      for (const [taskId, prefix] of prefixes) {
        const host = hosts().find((h) => prefix.endsWith(`@${h.name}`))!;
        const entries = lines(readFileSync(join(host.dataRoot, 'agent', 'executor', 'logs', taskId, 'log'), 'utf8')).map((l) => JSON.parse(l) as { stream: string; line: string });
        for (const e of entries.slice(-n)) (e.stream === 'stderr' ? want.err : want.out).push(`${prefix}    | ${e.line}`);
      }
      return { out: want.out.sort(), err: want.err.sort() };
    };
    for (const n of [1, 2, 3]) {
      const tail = shoal(['service', 'logs', '--tail', String(n), 'lg'], leader());
      expect(tail.status, tail.stderr).toBe(0);
      const want = lastOf(n);
      expect(lines(tail.stdout).sort(), `--tail ${n}`).toEqual(want.out);
      expect(lines(tail.stderr).sort(), `--tail ${n}`).toEqual(want.err);
    }
    const stamped = docker(leader(), ['service', 'logs', '-t', 'lg']);
    expect(stamped.status, stamped.stderr).toBe(0);
    expect(lines(stamped.stdout)).toHaveLength(6);
    for (const l of lines(stamped.stdout)) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \S+@\S+ +\| out-[12]$/);
    const [taskId, prefix] = [...prefixes][0]!;
    const one = shoal(['service', 'logs', taskId], follower());
    expect(one.status, one.stderr).toBe(0);
    expect(lines(one.stdout)).toEqual([`${prefix}    | out-1`, `${prefix}    | out-2`]);
  });

  it('shoal exec runs a command in a task of the service and exits with its code; a task ID picks that task', () => {
    const echo = shoal(['exec', 'lg', '--', 'sh', '-c', 'echo hello-from-exec; echo to-stderr >&2; exit 3'], follower());
    expect(echo.status).toBe(3);
    expect(echo.stdout).toBe('hello-from-exec\n');
    expect(echo.stderr).toBe('to-stderr\n');
    const [taskId] = [...prefixes][1]!;
    const host = shoal(['exec', taskId, '--', 'cat', '/etc/hostname'], leader());
    expect(host.status, host.stderr).toBe(0);
    expect(host.stdout.trim().length).toBeGreaterThan(0);
    const missing = shoal(['exec', 'lg', '--', '/no/such/binary'], leader());
    expect(missing.status).not.toBe(0);
  });

  it('-f prints the lines there, then a line written later, and ends when the client stops', async () => {
    const [node, ...pre] = SHOAL as [string, ...string[]];
    const child = spawn(node, [...pre, 'service', 'logs', '-f', '--tail', '0', 'lg'], {
      cwd: REPO,
      env: { ...process.env, SHOAL_LAB_ROOT: root, SHOAL_HOST: `unix://${follower().socket}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      // Every task writes its late line once /tmp/more exists in its container.
      await new Promise((r) => setTimeout(r, 1500));
      for (const taskId of prefixes.keys()) ok(shoal(['exec', taskId, '--', 'touch', '/tmp/more'], leader()));
      const got = await waitFor('the three late lines on the follow stream', () => {
        const late = lines(out).filter((l) => l.endsWith('| late-line'));
        return late.length === 3 ? late : undefined;
      });
      expect(got.sort()).toEqual([...prefixes.values()].map((p) => `${p}    | late-line`).sort());
      expect(lines(out).filter((l) => !l.endsWith('| late-line'))).toEqual([]);
    } finally {
      child.kill('SIGINT');
    }
    const code = await exited;
    expect(code === 0 || code === 130 || code === null).toBe(true);
  }, 60_000);
});
