// The broker on a real manager's cluster port, with a worker's LogPublisher connecting over mutual TLS
// with a worker certificate: a subscription reads the task's log file on the "worker" and ends; a
// following one gets a line appended later and stops when cancelled; an exec whose container does
// not exist comes back with runc's complaint and a failing exit code. No lab, no container: runc is
// asked for a container it does not have.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { newNodeId } from '../../ca/ids.js';
import { WORKER_ROLE } from '../../ca/roles.js';
import { LogSubscriptionOptions_Stream as S, type LogMessage } from '../../proto/gen/shoal/logs.js';
import { TaskLogWriter } from '../../worker/executor/task-log.js';
import { LogPublisher } from '../../worker/logs/publisher.js';
import { Manager } from '../manager.js';
import { newId } from '../store/ids.js';
import type { ExecResult, LogOutcome } from './broker.js';
import { managerLocator, openExec, openLogs, type BrokerLocator } from './route.js';

const logger = pino({ level: process.env['SHOAL_LOG_LEVEL'] ?? 'silent' });
const WAIT_MS = 10_000;

async function waitFor(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < WAIT_MS / 20 && !cond(); i++) {
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!cond()) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
}

describe('log broker over the cluster port', () => {
  let base: string;
  let m: Manager | null = null;
  let publisher: LogPublisher | null = null;
  let locator: BrokerLocator;
  let writer: TaskLogWriter;
  let workerId: string;
  const taskId = newId();
  const serviceId = newId();

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'shoal-logbroker-'));
    // The worker has no dispatcher session here: a long heartbeat period keeps its node from going
    // down (and its task from being orphaned) during the test.
    m = await Manager.init({ dataRoot: path.join(base, 'm'), listenAddr: '127.0.0.1:0', tickMs: 20, electionTick: 10, logger, leaderServices: { dispatcher: { heartbeatPeriodMs: 300_000 } } });
    const manager = m;
    const worker = await manager.ca!.issueLocalIdentity(newNodeId(), WORKER_ROLE, Date.now());
    workerId = worker.nodeId;
    await manager.store.update((tx) => {
      tx.create('node', { ID: worker.nodeId, Spec: { Role: 'worker', Availability: 'active' }, Status: { State: 'ready', Addr: '127.0.0.1' } });
      tx.create('task', {
        ID: taskId,
        Spec: { ContainerSpec: { Image: 'busybox' } },
        ServiceID: serviceId,
        Slot: 1,
        NodeID: worker.nodeId,
        Status: { Timestamp: new Date().toISOString(), State: 'running', Message: 'started' },
        DesiredState: 'running',
      });
    });
    const logsDir = path.join(base, 'logs');
    await mkdir(path.join(logsDir, taskId), { recursive: true });
    writer = new TaskLogWriter(path.join(logsDir, taskId, 'log'));
    writer.append([
      { ts: new Date().toISOString(), stream: 'stdout', line: 'first' },
      { ts: new Date().toISOString(), stream: 'stderr', line: 'second' },
    ]);
    await mkdir(path.join(base, 'runc'));
    publisher = new LogPublisher({
      nodeId: worker.nodeId,
      material: worker,
      clusterId: manager.clusterId,
      manager: () => manager.addr,
      logsDir,
      runc: { root: path.join(base, 'runc'), binary: 'runc' },
      tasks: () => [{ ID: taskId, ServiceID: serviceId }],
      logger,
      checkMs: 50,
      pollMs: 50,
    });
    publisher.start();
    locator = managerLocator(manager, () => manager.leaderServices?.logBroker ?? null);
    await waitFor('the worker to listen for subscriptions', () => manager.leaderServices?.logBroker?.connectedNodes.includes(worker.nodeId) === true);
  }, 30_000);

  afterAll(async () => {
    publisher?.close();
    await m?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('a subscription reads the task’s lines from its node and ends; the context names node, service and task', async () => {
    const got: LogMessage[] = [];
    const outcome = await new Promise<LogOutcome>((resolve, reject) => {
      openLogs(locator, { selector: { serviceIds: [serviceId], taskIds: [], nodeIds: [] }, options: { streams: [S.STREAM_STDOUT, S.STREAM_STDERR], follow: false, tail: -1, sinceUnixMs: 0 } }, { write: (ms) => got.push(...ms), end: resolve }).catch(reject);
    });
    expect(outcome).toEqual({ incomplete: [] });
    expect(got.map((x) => [x.stream, x.data.toString()])).toEqual([
      [S.STREAM_STDOUT, 'first\n'],
      [S.STREAM_STDERR, 'second\n'],
    ]);
    expect(got[0]!.context).toEqual({ nodeId: workerId, serviceId, taskId });
  });

  it('a following subscription gets a line written later (stdout only, tail 0) and stops when cancelled', async () => {
    const got: string[] = [];
    let ended: LogOutcome | null = null;
    const handle = await openLogs(
      locator,
      { selector: { serviceIds: [], taskIds: [taskId], nodeIds: [] }, options: { streams: [S.STREAM_STDOUT], follow: true, tail: 0, sinceUnixMs: 0 } },
      { write: (ms) => got.push(...ms.map((x) => x.data.toString())), end: (o) => (ended = o) },
    );
    await new Promise((r) => setTimeout(r, 200));
    writer.append([
      { ts: new Date().toISOString(), stream: 'stderr', line: 'not selected' },
      { ts: new Date().toISOString(), stream: 'stdout', line: 'later' },
    ]);
    await waitFor('the later line', () => got.length > 0);
    expect(got).toEqual(['later\n']);
    handle.cancel();
    expect(ended).toEqual({ incomplete: [] });
    expect(m!.leaderServices!.logBroker!.openSubscriptions).toBe(0);
  });

  it('an exec goes to the task’s node; runc’s refusal comes back as stderr and a failing exit code', async () => {
    let stderr = '';
    const result = await new Promise<ExecResult>((resolve, reject) => {
      openExec(locator, { id: '', taskId, argv: ['true'], env: [], user: '', workdir: '', cancel: false }, { output: (s, d) => (stderr += s === 'stderr' ? Buffer.from(d).toString() : ''), exit: resolve }).catch(reject);
    });
    expect(result.nodeId).toBe(workerId);
    expect(result.exitCode).not.toBe(0);
    expect(stderr).toMatch(/container does not exist/);
  });
});
