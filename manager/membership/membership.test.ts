// Membership.withLiveStatus: what GET /nodes answers for ManagerStatus, from live Raft state.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Manager } from '../manager.js';
import type { Node } from '../store/index.js';

const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });

describe('Membership.withLiveStatus', () => {
  let base: string;
  let m: Manager | null = null;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'shoal-membership-'));
    m = await Manager.init({ dataRoot: path.join(base, 'a'), listenAddr: '127.0.0.1:0', tickMs: 20, electionTick: 10, logger });
  });

  afterAll(async () => {
    await m?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('names the leader Raft follows now even when the stored ManagerStatus is stale, and leaves non-members as stored', () => {
    const self = m!.store.get('node', m!.nodeId)!;
    const { Leader: _l, ...status } = self.ManagerStatus!;
    // As stored right after a failover: the new leader not yet marked, the dead one still marked.
    const stale: Node = { ...self, ManagerStatus: { ...status, Reachability: 'unreachable' } };
    const gone: Node = { ...self, ID: 'formerleader0000000000000', ManagerStatus: { Addr: '127.0.0.9:1', Reachability: 'reachable', Leader: true } };
    const worker: Node = { ...self, ID: 'worker00000000000000000000', Spec: { ...self.Spec, Role: 'worker' } };
    const { ManagerStatus: _ms, ...workerNoStatus } = worker;

    const [live, former, plain] = m!.membership.withLiveStatus([stale, gone, workerNoStatus as Node]);

    expect(live!.ManagerStatus).toEqual({ Addr: self.ManagerStatus!.Addr, Reachability: 'reachable', Leader: true });
    expect(former).toBe(gone); // not a Raft member: what is stored
    expect(plain!.ManagerStatus).toBeUndefined();
    // The stored object itself is not changed.
    expect(stale.ManagerStatus?.Leader).toBeUndefined();
  });

  it('returns the same object when the stored status already matches', () => {
    const self = m!.store.get('node', m!.nodeId)!;
    expect(self.ManagerStatus?.Leader).toBe(true);
    expect(m!.membership.withLiveStatus([self])[0]).toBe(self);
  });
});
