// The broker's routing, driven through its own API as the gRPC layer drives it: nodes listen,
// subscribers subscribe, nodes publish. A subscription that does not follow goes to exactly the nodes
// holding the selected tasks and ends once each has closed (or is listed incomplete); a following
// one goes to every node, also to one that connects later, and ends only when cancelled, telling
// the nodes to stop. Exec goes to the task's node only, and its output and exit come back.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';

import { LogSubscriptionOptions_Stream as S, type ExecRequest, type LogMessage, type SubscriptionMessage } from '../../proto/gen/shoal/logs.js';
import type { Task } from '../store/types.js';
import { LogBroker, selectTasks, type ExecResult, type LogOutcome, type TaskSource } from './broker.js';

const task = (id: string, service: string, node: string, state = 'running'): Task =>
  ({ ID: id, ServiceID: service, NodeID: node, Slot: 1, DesiredState: 'running', Status: { State: state } }) as unknown as Task;

function source(tasks: Task[]): TaskSource {
  return { get: (_k, id) => tasks.find((t) => t.ID === id), find: () => tasks };
}

const TASKS = [task('t1', 'web', 'n1'), task('t2', 'web', 'n2'), task('t3', 'db', 'n2'), task('t4', 'web', '', 'pending')];
const both = { streams: [S.STREAM_STDOUT, S.STREAM_STDERR], follow: false, tail: -1, sinceUnixMs: 0 };
const line = (taskId: string, text: string): LogMessage => ({ context: { taskId, serviceId: '', nodeId: 'forged' }, timestampUnixMs: 1, stream: S.STREAM_STDOUT, data: Buffer.from(text), attrs: {} });

function collector(): { lines: LogMessage[]; ended: Promise<LogOutcome>; sink: { write(m: readonly LogMessage[]): void; end(o: LogOutcome): void } } {
  const lines: LogMessage[] = [];
  let resolve!: (o: LogOutcome) => void;
  const ended = new Promise<LogOutcome>((r) => (resolve = r));
  return { lines, ended, sink: { write: (m) => lines.push(...m), end: (o) => resolve(o) } };
}

function broker(tasks = TASKS, noFollowTimeoutMs = 5000): LogBroker {
  return new LogBroker({ tasks: source(tasks), logger: pino({ level: 'silent' }), noFollowTimeoutMs });
}

describe('log subscriptions', () => {
  it('select assigned tasks by service, task and node', () => {
    expect(selectTasks(TASKS, { serviceIds: ['web'], taskIds: [], nodeIds: [] }).map((t) => t.ID)).toEqual(['t1', 't2']);
    expect(selectTasks(TASKS, { serviceIds: ['web'], taskIds: ['t3'], nodeIds: ['n2'] }).map((t) => t.ID)).toEqual(['t2', 't3']);
  });

  it('without follow, ask only the nodes holding the tasks, and end once each closed; the context comes from the certificate and the store', async () => {
    const b = broker();
    const got = new Map<string, SubscriptionMessage[]>();
    for (const n of ['n1', 'n2', 'n3']) b.listen(n, (m) => got.set(n, [...(got.get(n) ?? []), m]));
    const c = collector();
    b.subscribe({ selector: { serviceIds: ['web'], taskIds: [], nodeIds: [] }, options: both }, c.sink);
    expect([...got.keys()].sort()).toEqual(['n1', 'n2']);
    const sub = got.get('n2')![0]!;
    expect(sub.selector?.taskIds).toEqual(['t2']);
    b.publish('n2', { subscriptionId: sub.id, messages: [line('t2', 'b\n')], close: true });
    b.publish('n3', { subscriptionId: sub.id, messages: [line('t2', 'not yours\n')], close: true }); // never asked: dropped
    b.publish('n1', { subscriptionId: sub.id, messages: [line('t1', 'a\n')], close: true });
    expect(await c.ended).toEqual({ incomplete: [] });
    expect(c.lines.map((m) => [m.data.toString(), m.context])).toEqual([
      ['b\n', { taskId: 't2', serviceId: 'web', nodeId: 'n2' }],
      ['a\n', { taskId: 't1', serviceId: 'web', nodeId: 'n1' }],
    ]);
    expect(b.openSubscriptions).toBe(0);
  });

  it('lists a node with no stream, a node whose stream broke and a node that never answered as incomplete', async () => {
    const b = broker(TASKS, 200);
    b.listen('n2', () => undefined);
    const c = collector();
    b.subscribe({ selector: { serviceIds: ['web'], taskIds: [], nodeIds: [] }, options: both }, c.sink);
    expect(await c.ended).toEqual({ incomplete: ['n1', 'n2'] });

    const b2 = broker();
    let id = '';
    const gone = b2.listen('n1', (m) => (id = m.id));
    const c2 = collector();
    b2.subscribe({ selector: { serviceIds: [], taskIds: ['t1'], nodeIds: [] }, options: both }, c2.sink);
    expect(id).not.toBe('');
    gone();
    expect(await c2.ended).toEqual({ incomplete: ['n1'] });
  });

  it('refuses a subscription without a stream, and ends at once when no task matches', async () => {
    const b = broker();
    expect(() => b.subscribe({ selector: { serviceIds: ['web'], taskIds: [], nodeIds: [] }, options: { ...both, streams: [] } }, collector().sink)).toThrow(/at least one stream/);
    const c = collector();
    b.subscribe({ selector: { serviceIds: ['nothing'], taskIds: [], nodeIds: [] }, options: both }, c.sink);
    expect(await c.ended).toEqual({ incomplete: [] });
  });

  it('following, go to every node, also one that connects later, until cancelled; then tell them to close', () => {
    const b = broker();
    const got: [string, SubscriptionMessage][] = [];
    b.listen('n1', (m) => got.push(['n1', m]));
    const c = collector();
    const handle = b.subscribe({ selector: { serviceIds: ['web'], taskIds: [], nodeIds: [] }, options: { ...both, follow: true } }, c.sink);
    b.listen('n9', (m) => got.push(['n9', m]));
    expect(got.map(([n, m]) => [n, m.close])).toEqual([
      ['n1', false],
      ['n9', false],
    ]);
    const id = got[0]![1].id;
    b.publish('n9', { subscriptionId: id, messages: [line('t9', 'new task\n')], close: false });
    expect(c.lines).toHaveLength(1);
    handle.cancel();
    expect(got.slice(2).map(([n, m]) => [n, m.id, m.close])).toEqual([
      ['n1', id, true],
      ['n9', id, true],
    ]);
    expect(b.openSubscriptions).toBe(0);
  });
});

describe('a node that reconnects', () => {
  it('gets the following subscriptions again on its new stream; the old stream ending later changes nothing', () => {
    const b = broker();
    const old: SubscriptionMessage[] = [];
    const fresh: SubscriptionMessage[] = [];
    const oldGone = b.listen('n1', (m) => old.push(m));
    const c = collector();
    b.subscribe({ selector: { serviceIds: ['web'], taskIds: [], nodeIds: [] }, options: { ...both, follow: true } }, c.sink);
    b.listen('n1', (m) => fresh.push(m));
    oldGone();
    expect(old.map((m) => m.close)).toEqual([false]);
    expect(fresh.map((m) => [m.id, m.close])).toEqual([[old[0]!.id, false]]);
    b.publish('n1', { subscriptionId: old[0]!.id, messages: [line('t1', 'still here\n')], close: false });
    expect(c.lines).toHaveLength(1);
  });
});

describe('exec routing', () => {
  function execSink(): { out: string[]; exit: Promise<ExecResult>; sink: { output(s: string, d: Uint8Array): void; exit(r: ExecResult): void } } {
    const out: string[] = [];
    let resolve!: (r: ExecResult) => void;
    const exit = new Promise<ExecResult>((r) => (resolve = r));
    return { out, exit, sink: { output: (s, d) => out.push(`${s}:${Buffer.from(d).toString()}`), exit: (r) => resolve(r) } };
  }
  const req = (taskId: string): ExecRequest => ({ id: '', taskId, argv: ['echo', 'hi'], env: [], user: '', workdir: '', cancel: false });

  it('sends the command to the task’s node only and streams its output and exit code back', async () => {
    const b = broker();
    const n1: ExecRequest[] = [];
    const n2: ExecRequest[] = [];
    b.listenExecs('n1', (r) => n1.push(r));
    b.listenExecs('n2', (r) => n2.push(r));
    const s = execSink();
    b.exec(req('t2'), s.sink);
    expect(n1).toEqual([]);
    expect(n2.map((r) => [r.taskId, r.argv])).toEqual([['t2', ['echo', 'hi']]]);
    const id = n2[0]!.id;
    b.publishExec('n1', { execId: id, stream: S.STREAM_STDOUT, data: Buffer.from('forged'), exited: true, exitCode: 0, error: '', nodeId: '' });
    b.publishExec('n2', { execId: id, stream: S.STREAM_STDERR, data: Buffer.from('hi\n'), exited: false, exitCode: 0, error: '', nodeId: '' });
    b.publishExec('n2', { execId: id, stream: S.STREAM_UNSPECIFIED, data: Buffer.alloc(0), exited: true, exitCode: 7, error: '', nodeId: '' });
    expect(await s.exit).toEqual({ exitCode: 7, error: '', nodeId: 'n2' });
    expect(s.out).toEqual(['stderr:hi\n']);
  });

  it('refuses a task that is not running or whose node is not connected, and ends when the node goes', async () => {
    const b = broker();
    expect(() => b.exec(req('t4'), execSink().sink)).toThrow(/not assigned/);
    expect(() => b.exec(req('nope'), execSink().sink)).toThrow(/not found/);
    expect(() => b.exec(req('t1'), execSink().sink)).toThrow(/not connected/);
    const sent: ExecRequest[] = [];
    const gone = b.listenExecs('n1', (r) => sent.push(r));
    const s = execSink();
    const handle = b.exec(req('t1'), s.sink);
    gone();
    expect((await s.exit).error).toMatch(/went away/);
    handle.cancel(); // after the end: nothing more is sent
    expect(sent).toHaveLength(1);
  });

  it('a cancel tells the node to kill the command', async () => {
    const b = broker();
    const sent: ExecRequest[] = [];
    b.listenExecs('n1', (r) => sent.push(r));
    const s = execSink();
    b.exec(req('t1'), s.sink).cancel();
    expect(sent.map((r) => r.cancel)).toEqual([false, true]);
    expect((await s.exit).error).toBe('cancelled');
  });
});
