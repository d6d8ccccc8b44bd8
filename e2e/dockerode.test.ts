// dockerode (npm) as a second client of shoald on a real one-manager lab: it uses unversioned
// paths, array-form filters, options in both query and body, and a spec in X-Registry-Auth
// (docker-api.md §6). info, distribution, create a service, list its tasks until one runs,
// update it with version, remove it. The lab is always taken down.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabState } from '../cli/lab/state.js';
import { ensureCliBuilt } from './build-cli.js';
import { pollUntil } from './support.js';

const REPO = join(import.meta.dirname, '..');
const BUILD_TIMEOUT_MS = 240_000;
const POLL_MS = 300;
const WAIT_LIMIT_MS = 45_000;

let root = ''; // '' until beforeAll made it: afterAll must not fail over a failed beforeAll

function run(args: readonly string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'shoal'), ...args], { cwd: REPO, env: { ...process.env, SHOAL_LAB_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', (err) => resolve({ status: null, stdout, stderr: `${stderr}${err.message}` }));
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  return pollUntil(what, probe, WAIT_LIMIT_MS, POLL_MS);
}

beforeAll(async () => {
  ensureCliBuilt();
  root = await mkdtemp(join(tmpdir(), 'shoal-e2e-dockerode-'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

describe('dockerode against shoald', () => {
  const name = `e2d-${process.pid}`;
  let docker: Docker;

  beforeAll(async () => {
    const up = await run(['lab', 'up', '--name', name, '--managers', '1', '--workers', '0'], 110_000);
    expect(up.status, up.stderr + up.stdout).toBe(0);
    const state = JSON.parse(readFileSync(join(root, name, 'state.json'), 'utf8')) as LabState;
    docker = new Docker({ socketPath: state.hosts[0]!.socket });
  }, 120_000);

  afterAll(async () => {
    await run(['lab', 'down', '--name', name], 110_000); // also when a test failed
  }, 120_000);

  it('info, distribution, create a service, list its tasks, update it, remove it', async () => {
    const info = (await docker.info()) as { Swarm: { LocalNodeState: string; ControlAvailable: boolean; NodeID: string } };
    expect(info.Swarm).toMatchObject({ LocalNodeState: 'active', ControlAvailable: true });
    expect((await docker.ping()).toString()).toBe('OK');

    const dist = (await docker.getImage('busybox:latest').distribution()) as { Descriptor: { digest: string }; Platforms: { os: string }[] };
    expect(dist.Descriptor.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(dist.Platforms.map((p) => p.os)).toContain('linux');

    // One argument: dockerode sends the spec itself as X-Registry-Auth, which shoald must tolerate.
    const created = (await docker.createService({
      Name: 'viaode',
      Labels: { client: 'dockerode' },
      TaskTemplate: { ContainerSpec: { Image: `busybox:latest@${dist.Descriptor.digest}`, Args: ['sleep', '600'] } },
      Mode: { Replicated: { Replicas: 1 } },
    })) as { id?: string; ID?: string };
    const id = created.ID ?? created.id ?? '';
    expect(id).toMatch(/^[a-z0-9]{25}$/);

    const listed = await docker.listServices({ filters: { label: ['client=dockerode'] } });
    expect(listed.map((s) => s.Spec?.Name)).toEqual(['viaode']);

    const running = await waitFor('a running task of viaode', async () => {
      const tasks = await docker.listTasks({ filters: { service: ['viaode'], 'desired-state': ['running'] } });
      return tasks.some((t) => t.Status?.State === 'running') ? tasks : undefined;
    });
    expect(running[0]!.ServiceID).toBe(id);
    expect(running[0]!.NodeID).toBe(info.Swarm.NodeID);

    const service = docker.getService(id);
    const before = (await service.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
    expect(before.Spec).not.toHaveProperty('version');
    await service.update({ ...before.Spec, version: before.Version.Index, Labels: { client: 'dockerode', step: 'updated' } });
    const after = (await service.inspect()) as { Version: { Index: number }; Spec: { Labels: Record<string, string> } & Record<string, unknown> };
    expect(after.Spec.Labels).toEqual({ client: 'dockerode', step: 'updated' });
    expect(after.Spec).not.toHaveProperty('version');
    expect(after.Version.Index).toBeGreaterThan(before.Version.Index);

    await service.remove();
    expect(await docker.listServices()).toEqual([]);
    await waitFor('viaode tasks gone', async () => ((await docker.listTasks({ filters: { service: [id] } })).length === 0 ? true : undefined));
  }, 120_000);
});
