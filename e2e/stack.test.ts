// Stacks, image pinning and progress on a real lab (one manager, one worker): `shoal stack deploy`
// of a compose file creates its network, secret, config and services labelled with the stack,
// and the real `docker stack services|ls|ps` show them; a redeploy with 3 replicas updates the
// service in place (same ID); the real `docker stack deploy` works against shoald too; `stack rm`
// removes services, secrets, configs and networks. `docker service create` without
// --no-resolve-image pins the image to the lab registry's digest (GET /distribution) with no
// warning; `shoal service create` without -d prints docker's progress until converged. The lab is
// always taken down.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabState } from '../cli/lab/state.js';
import { ensureCliBuilt } from './build-cli.js';
import { ok, pollUntil } from './support.js';

const REPO = join(import.meta.dirname, '..');
const SHOAL = [process.execPath, join(REPO, 'bin', 'shoal')];
const BUILD_TIMEOUT_MS = 240_000;
const POLL_MS = 300;
const WAIT_LIMIT_MS = 45_000;

type Host = LabState['hosts'][number];

let root = ''; // '' until beforeAll made it: afterAll must not fail over a failed beforeAll
let work = '';
let dockerConfig = '';

/** A command run without blocking the test worker (lab up/down take a while). */
function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, [...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', (err) => resolve({ status: null, stdout, stderr: `${stderr}${err.message}` }));
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}


/** Polls `probe` until it returns a value (bounded); see pollUntil. */
function waitFor<T>(what: string, probe: () => T | undefined): Promise<T> {
  return pollUntil(what, probe, WAIT_LIMIT_MS, POLL_MS);
}

const compose = (replicas: number, tools = true): string => `
version: "3.8"
services:
  web:
    image: busybox
    command: sleep 600
    stop_grace_period: 1s
    environment:
      GREETING: hello
    networks: [front]
    secrets: [token]
    configs: [{source: settings, target: /etc/settings.conf}]
    deploy:
      replicas: ${replicas}
      labels: {tier: frontend}
      update_config: {parallelism: 1, delay: 1s}
      restart_policy: {condition: any}
${tools ? '  tools:\n    image: busybox\n    command: ["sleep", "600"]\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n' : ''}networks:
  front:
    driver: overlay
secrets:
  token:
    file: ./token.txt
configs:
  settings:
    content: "level = 3"
`;

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-stack-'));
  work = await mkdtemp(join(tmpdir(), 'shoal-e2e-stack-files-'));
  dockerConfig = await mkdtemp(join(tmpdir(), 'shoal-e2e-docker-'));
  await writeFile(join(work, 'token.txt'), 't0ken\n');
  await writeFile(join(work, 'compose.yml'), compose(2));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
  if (work !== '') await rm(work, { recursive: true, force: true });
  if (dockerConfig !== '') await rm(dockerConfig, { recursive: true, force: true });
});

describe('stacks on a lab', () => {
  const name = `e2s-${process.pid}`;
  let state: LabState | undefined;
  const manager = (): Host => state!.hosts[0]!;
  const shoal = (args: readonly string[]): SpawnSyncReturns<string> => {
    const [node, ...pre] = SHOAL as [string, ...string[]];
    return spawnSync(node, [...pre, '-H', `unix://${manager().socket}`, ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, SHOAL_LAB_ROOT: root }, timeout: 90_000 });
  };
  const docker = (args: readonly string[]): SpawnSyncReturns<string> =>
    spawnSync('docker', ['-H', `unix://${manager().socket}`, ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: dockerConfig }, timeout: 60_000 });
  const stackServices = (stack: string): string[] => ok(docker(['stack', 'services', stack, '--format', '{{.Name}} {{.Mode}} {{.Replicas}}'])).trim().split('\n').sort();

  const labCmd = (args: readonly string[]): ReturnType<typeof run> => run(process.execPath, [...SHOAL.slice(1), 'lab', ...args, '--name', name], { ...process.env, SHOAL_LAB_ROOT: root }, 110_000);

  beforeAll(async () => {
    const up = await labCmd(['up', '--managers', '1', '--workers', '1']);
    expect(up.status, up.stderr + up.stdout).toBe(0);
    state = JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as LabState;
  }, 120_000);

  afterAll(async () => {
    await labCmd(['down']); // also when a test failed
  }, 120_000);

  it('shoal stack deploy creates the stack; docker stack services/ls/ps show it', async () => {
    const r = shoal(['stack', 'deploy', '-c', 'compose.yml', 'app']);
    expect(r.status, r.stderr).toBe(0);
    for (const line of ['Creating network app_default', 'Creating network app_front', 'Creating secret app_token', 'Creating config app_settings', 'Creating service app_tools', 'Creating service app_web']) {
      expect(r.stdout).toContain(`${line}\n`);
    }
    expect(r.stderr).not.toContain('could not be accessed on a registry');
    const converged = await waitFor('app_web 2/2 and app_tools 2/2', () => {
      const lines = stackServices('app');
      return JSON.stringify(lines) === JSON.stringify(['app_tools global 2/2', 'app_web replicated 2/2']) ? lines : undefined;
    });
    expect(converged).toHaveLength(2);
    expect(ok(docker(['stack', 'ls', '--format', '{{.Name}}:{{.Services}}'])).trim()).toBe('app:2');
    const ps = ok(docker(['stack', 'ps', 'app', '--filter', 'desired-state=running', '--format', '{{.Name}} {{.CurrentState}}'])).trim().split('\n');
    expect(ps.filter((l) => /^app_web\.[12] Running/.test(l))).toHaveLength(2);
    const web = JSON.parse(ok(docker(['service', 'inspect', 'app_web', '--format', '{{json .Spec}}']))) as {
      Labels: Record<string, string>;
      TaskTemplate: { ContainerSpec: { Image: string; Env: string[]; Secrets: { SecretName: string }[]; Configs: { ConfigName: string; File: { Name: string } }[] } };
    };
    expect(web.Labels).toMatchObject({ 'com.docker.stack.namespace': 'app', 'com.docker.stack.image': 'busybox', tier: 'frontend' });
    expect(web.TaskTemplate.ContainerSpec.Image).toMatch(/^busybox:latest@sha256:[0-9a-f]{64}$/);
    expect(web.TaskTemplate.ContainerSpec.Env).toEqual(['GREETING=hello']);
    expect(web.TaskTemplate.ContainerSpec.Secrets.map((s) => s.SecretName)).toEqual(['app_token']);
    expect(web.TaskTemplate.ContainerSpec.Configs.map((c) => [c.ConfigName, c.File.Name])).toEqual([['app_settings', '/etc/settings.conf']]);
    expect(ok(shoal(['stack', 'ps', 'app', '-q'])).trim().split('\n').length).toBeGreaterThanOrEqual(4);
  }, 120_000);

  it('a redeploy with 3 replicas updates the service in place; --prune removes the service the file dropped', async () => {
    const before = ok(docker(['service', 'inspect', 'app_web', '--format', '{{.ID}}'])).trim();
    await writeFile(join(work, 'compose.yml'), compose(3, false));
    const r = shoal(['stack', 'deploy', '-c', 'compose.yml', '--prune', 'app']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Updating service app_web (id: ${before})`);
    expect(r.stdout).toContain('Removing service app_tools');
    expect(r.stdout).not.toContain('Creating network');
    await waitFor('app_web 3/3', () => (JSON.stringify(stackServices('app')) === JSON.stringify(['app_web replicated 3/3']) ? true : undefined));
    expect(ok(docker(['service', 'inspect', 'app_web', '--format', '{{.ID}}'])).trim()).toBe(before);
    expect(ok(shoal(['service', 'ls', '-q'])).trim().split('\n')).toHaveLength(1);

    // The real docker CLI's progress loop (`_up-to-date` tasks only) follows a rolling update to the end.
    const upd = docker(['service', 'update', '--detach=false', '--env-add', 'STEP=2', 'app_web']);
    expect(upd.status, upd.stderr).toBe(0);
    expect(upd.stdout).toContain('verify: Service app_web converged');
    const envs = ok(docker(['service', 'inspect', 'app_web', '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Env}}'])).trim();
    expect((JSON.parse(envs) as string[]).sort()).toEqual(['GREETING=hello', 'STEP=2']);
  }, 120_000);

  it('the real docker stack deploy works against shoald, and stack rm removes everything', async () => {
    await writeFile(join(work, 'dk.yml'), 'version: "3.8"\nservices:\n  one:\n    image: busybox\n    command: sleep 600\n    stop_grace_period: 1s\n    deploy: {replicas: 1}\n');
    const d = docker(['stack', 'deploy', '-c', 'dk.yml', 'dk']);
    expect(d.status, d.stderr).toBe(0);
    expect(d.stdout).toContain('Creating service dk_one');
    await waitFor('dk_one 1/1', () => (stackServices('dk').includes('dk_one replicated 1/1') ? true : undefined));
    expect(ok(shoal(['stack', 'ls'])).trim().split('\n')).toEqual(['NAME      SERVICES', 'app       1', 'dk        1']);

    // shoald refuses a network while a task on it has not stopped yet (dockerd looks at desired
    // state too), so the docker CLI may report the network once: a user runs `stack rm` again.
    await waitFor('docker stack rm dk to succeed', () => (docker(['stack', 'rm', 'dk']).status === 0 ? true : undefined));
    const rmApp = shoal(['stack', 'rm', 'app']);
    expect(rmApp.status, rmApp.stderr).toBe(0);
    expect(rmApp.stdout.trim().split('\n')).toEqual([
      'Removing service app_web',
      'Removing secret app_token',
      'Removing config app_settings',
      'Removing network app_default',
      'Removing network app_front',
    ]);
    expect(ok(docker(['service', 'ls', '-q'])).trim()).toBe('');
    expect(ok(docker(['secret', 'ls', '-q'])).trim()).toBe('');
    expect(ok(docker(['config', 'ls', '-q'])).trim()).toBe('');
    expect(ok(docker(['network', 'ls', '--filter', 'label=com.docker.stack.namespace', '-q'])).trim()).toBe('');
    expect(ok(docker(['stack', 'ls'])).trim()).toBe('NAME      SERVICES');
    const again = shoal(['stack', 'rm', 'app']);
    expect([again.status, again.stderr.trim()]).toEqual([0, 'Nothing found in stack: app']);
  }, 120_000);

  it('docker service create pins the image digest through /distribution; shoal service create shows progress', async () => {
    const reg = `http://${state!.gateway}:5000/v2/library/busybox/manifests/latest`;
    const head = await fetch(reg, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' } });
    const digest = head.headers.get('docker-content-digest');
    expect(digest).toMatch(/^sha256:/);
    const c = docker(['service', 'create', '-d', '--name', 'pinned', 'busybox', 'sleep', '600']);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stderr).not.toContain('could not be accessed');
    expect(ok(docker(['service', 'inspect', 'pinned', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}'])).trim()).toBe(`busybox:latest@${digest}`);

    const p = shoal(['service', 'create', '--name', 'watched', '--replicas', '1', 'busybox', 'sleep', '600']);
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout.trim()).toMatch(/^[a-z0-9]{25}$/);
    const lines = p.stderr.trim().split('\n');
    expect(lines).toContain('overall progress: 1 out of 1 tasks');
    expect(lines.some((l) => l.startsWith('1/1: running '))).toBe(true);
    expect(lines).toContain(`verify: Service ${p.stdout.trim()} converged`);
    ok(docker(['service', 'rm', 'pinned', 'watched']));
  }, 120_000);
});
