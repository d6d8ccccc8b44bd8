// One manager in its own process, driven by its parent over IPC (see harness.ts).
//
//   node --import tsx manager/testing/manager-process.ts '<json StartSpec>'
//
// On start it runs Manager.init / join / restart / forceNewCluster and sends
// { type: 'ready', info } (or { type: 'failed', error }); then it answers { id, op, args }
// requests with { type: 'reply', id, ok, result | error }. It exits when its parent goes away.
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';

import { ManagerError, managerErrorFromGrpc } from '../errors.js';
import type { LeaderServicesOptions } from '../leader-services.js';
import { Manager, type ManagerTuning } from '../manager.js';
import { callMembership } from '../membership/service.js';
import { clusterOf } from '../membership/cluster-state.js';
import { KINDS, type Config } from '../store/index.js';
import type { JoinRequest, JoinResponse } from '../../proto/gen/shoal/raft.js';

/** Tuning plus the leader services' options (JSON: no clock). */
export type ProcessTuning = ManagerTuning & { readonly leaderServices?: boolean | Omit<LeaderServicesOptions, 'clock'> };

export type StartSpec =
  | ({ readonly mode: 'init'; readonly dataRoot: string; readonly listenAddr: string } & ProcessTuning)
  | ({ readonly mode: 'join'; readonly dataRoot: string; readonly listenAddr: string; readonly remoteAddr: string; readonly token: string } & ProcessTuning)
  | ({ readonly mode: 'restart' | 'force-new-cluster'; readonly dataRoot: string } & ProcessTuning);

export interface ProcessInfo {
  readonly nodeId: string;
  readonly clusterId: string;
  readonly addr: string;
  readonly pid: number;
}

export interface RequestMessage {
  readonly id: number;
  readonly op: string;
  readonly args: Readonly<Record<string, unknown>>;
}

export type ReplyError = { readonly code: string; readonly message: string };

export type ChildMessage =
  | { readonly type: 'ready'; readonly info: ProcessInfo }
  | { readonly type: 'failed'; readonly error: ReplyError }
  | { readonly type: 'reply'; readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly type: 'reply'; readonly id: number; readonly ok: false; readonly error: ReplyError };

function errorOf(err: unknown): ReplyError {
  const e = err as { code?: unknown; message?: unknown };
  return { code: typeof e.code === 'string' ? e.code : typeof e.code === 'number' ? `GRPC_${e.code}` : 'ERROR', message: String(e.message ?? err) };
}

function send(m: ChildMessage): void {
  process.send?.(m);
}

async function start(spec: StartSpec): Promise<Manager> {
  const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' }, pino.destination(2));
  const { mode: _mode, ...rest } = spec;
  const base = { ...rest, logger };
  switch (spec.mode) {
    case 'init':
      return Manager.init({ ...base, listenAddr: spec.listenAddr });
    case 'join':
      return Manager.join({ ...base, listenAddr: spec.listenAddr, remoteAddr: spec.remoteAddr, token: spec.token });
    case 'restart':
      return Manager.restart(base);
    case 'force-new-cluster':
      return Manager.forceNewCluster(base);
  }
}

/** Every object of every kind, sorted, as JSON-able data: what "state identical" compares. */
function dump(m: Manager): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const k of KINDS) {
    // Node ManagerStatus (reachability, leader flag) and Status (a new leader's dispatcher marks
    // every node 'unknown' until it reconnects, as swarmkit's does) are liveness, not committed data
    // the test can expect to match across a restart: compare everything else.
    out[k] = m.store
      .find(k)
      .map((o) => (k === 'node' ? { ...o, ManagerStatus: undefined, Status: undefined, Version: undefined, UpdatedAt: undefined } : o))
      .sort((a, b) => (a.ID < b.ID ? -1 : 1));
  }
  return out;
}

async function handle(m: Manager, op: string, args: Readonly<Record<string, unknown>>): Promise<unknown> {
  switch (op) {
    case 'status':
      return { ...m.status(), members: m.members(), storeVersion: m.store.version, transport: m.transport.peerStates() };
    case 'put': {
      const name = String(args['name']);
      const { version, result } = await m.update((tx) => tx.create('config', { Spec: { Name: name, Data: Buffer.from(String(args['data'] ?? name)).toString('base64') } }));
      return { id: result.ID, version };
    }
    case 'configs':
      return m.store
        .find('config')
        .map((c: Config) => c.Spec.Name)
        .sort();
    case 'dump':
      return { version: m.store.version, objects: dump(m) };
    case 'tokens': {
      const c = clusterOf(m.store);
      return c?.JoinTokens ?? null;
    }
    case 'partition':
      m.transport.setPartitioned((args['peers'] as string[] | undefined) ?? []);
      return null;
    case 'demote':
      await m.demote(String(args['nodeId']), { force: args['force'] === true });
      return null;
    case 'remove':
      await m.remove(String(args['nodeId']), { force: args['force'] === true });
      return null;
    case 'leave':
      await m.leave({ force: args['force'] === true });
      return null;
    case 'rejoin': {
      // Asks a manager to add us again with the certificate we hold now.
      try {
        await callMembership<JoinRequest, JoinResponse>(String(args['remoteAddr']), m.identity, m.clusterId, 'join', { addr: m.addr }, new grpc.Metadata(), 10_000);
        return { joined: true };
      } catch (err) {
        const e = managerErrorFromGrpc(err as grpc.ServiceError);
        return { joined: false, code: e.code, message: e.message };
      }
    }
    case 'control': {
      // A ControlApi call on this manager, as the daemon makes it: { method, args }.
      const api = m.leaderServices?.control;
      if (api == null) throw new ManagerError('CLOSED', 'this manager runs no control API');
      const fn = (api as unknown as Record<string, (...a: unknown[]) => unknown>)[String(args['method'])];
      if (typeof fn !== 'function') throw new ManagerError('JOIN_FAILED', `no control method ${String(args['method'])}`);
      return await fn.apply(api, (args['args'] as unknown[] | undefined) ?? []);
    }
    case 'leading':
      return { leader: m.isLeader, orchestrating: m.leaderServices?.running ?? false, starts: m.leaderServices?.starts ?? 0 };
    case 'close':
      await m.close();
      return null;
    default:
      throw new ManagerError('JOIN_FAILED', `unknown op ${op}`);
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as StartSpec;
  // Never outlive the parent (a test that crashed must not leave managers behind).
  process.on('disconnect', () => process.exit(0));
  let m: Manager;
  try {
    m = await start(spec);
  } catch (err) {
    send({ type: 'failed', error: errorOf(err) });
    process.disconnect?.();
    return;
  }
  process.on('message', (msg: RequestMessage) => {
    handle(m, msg.op, msg.args ?? {}).then(
      (result) => send({ type: 'reply', id: msg.id, ok: true, result: result ?? null }),
      (err: unknown) => send({ type: 'reply', id: msg.id, ok: false, error: errorOf(err) }),
    );
  });
  send({ type: 'ready', info: { nodeId: m.nodeId, clusterId: m.clusterId, addr: m.addr, pid: process.pid } });
}

void main();
