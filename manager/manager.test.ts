// The Manager runtime in this process (the multi-process behaviour is in managers.test.ts).
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KEYS_FILE } from './keymanager/key-manager.js';
import { ManagerError } from './errors.js';
import { Manager } from './manager.js';
import { clusterOf } from './membership/cluster-state.js';

const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });
const TUNING = { tickMs: 20, electionTick: 10, logger } as const;

describe('Manager (one process)', () => {
  let base: string;
  let m: Manager | null = null;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'shoal-manager-'));
  });

  afterAll(async () => {
    await m?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('init writes the Cluster object (CA, join tokens, empty removed list) and its own manager Node; the DEK file is 0600', async () => {
    m = await Manager.init({ dataRoot: path.join(base, 'a'), listenAddr: '127.0.0.1:0', ...TUNING });
    const cluster = clusterOf(m.store)!;
    expect(cluster.ID).toBe(m.clusterId);
    expect(cluster.JoinTokens?.Manager).toMatch(/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    expect(cluster.ShoalCA?.clusterId).toBe(m.clusterId);
    expect(cluster.RemovedNodes).toEqual([]);
    const self = m.store.get('node', m.nodeId)!;
    expect(self.Spec.Role).toBe('manager');
    expect(self.ManagerStatus).toMatchObject({ Addr: m.addr, Leader: true, Reachability: 'reachable' });
    expect((await stat(path.join(base, 'a', KEYS_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(base, 'a', 'certificates', 'swarm-node.key'))).mode & 0o777).toBe(0o600);
  });

  it('refuses a second init on the same data root', async () => {
    await expect(Manager.init({ dataRoot: path.join(base, 'a'), listenAddr: '127.0.0.1:0', ...TUNING })).rejects.toMatchObject({ code: 'ALREADY_INITIALIZED' });
  });

  it('refuses to join as a manager with the worker token, leaving the data root empty', async () => {
    const tokens = clusterOf(m!.store)!.JoinTokens!;
    const dataRoot = path.join(base, 'w');
    const err = await Manager.join({ dataRoot, listenAddr: '127.0.0.1:0', remoteAddr: m!.addr, token: tokens.Worker, ...TUNING }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagerError);
    expect((err as ManagerError).code).toBe('WRONG_TOKEN_ROLE');
    expect(await readdir(dataRoot)).toEqual([]);
  });

  it('a lone manager refuses to leave without --force; restart reopens the same state', async () => {
    await expect(m!.leave()).rejects.toMatchObject({ code: 'LAST_MANAGER' });
    await m!.update((tx) => tx.create('config', { Spec: { Name: 'kept', Data: 'eA==' } }));
    const { nodeId, addr } = m!;
    await m!.close();
    m = await Manager.restart({ dataRoot: path.join(base, 'a'), ...TUNING });
    // Entries past the last persisted commit index apply once this node leads again.
    for (let i = 0; i < 500 && !m.isLeader; i++) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 500 && m.store.find('config').length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(m.nodeId).toBe(nodeId);
    expect(m.addr).toBe(addr);
    expect(m.store.lookup('config', 'kept').Spec.Name).toBe('kept');
    expect(m.ca?.clusterId ?? (await waitForCA(m))).toBe(m.clusterId);
  });
});

async function waitForCA(m: Manager): Promise<string> {
  for (let i = 0; i < 200 && m.ca === null; i++) await new Promise((r) => setTimeout(r, 10));
  return m.ca!.clusterId;
}
