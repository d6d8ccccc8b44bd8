// The worker's side of `service logs` and `shoal exec`: it keeps ListenSubscriptions and ListenExecs
// streams open to the manager the agent's session is with (the leader; it follows the agent when
// that changes), and for each subscription reads the matching tasks' log files and sends their lines
// on a PublishLogs stream — once (ending with `close`) or, when following, as they are appended,
// until the manager closes the subscription. Each exec request runs `runc exec` in the task's
// container and streams its output and exit code on a PublishExec stream.
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

import {
  LogBrokerClient,
  LogSubscriptionOptions_Stream,
  type ExecMessage,
  type ExecRequest,
  type LogMessage,
  type PublishLogsMessage,
  type SubscriptionMessage,
} from '../../proto/gen/shoal/logs.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, type TlsMaterial } from '../../proto/grpc/tls.js';
import type { LogEntry, LogStream } from '../executor/task-log.js';
import { startExec, type RunningExec, type RuncLocation } from './exec.js';
import { TaskLogFollower, type LogFilter } from './reader.js';

export interface PublishedTask {
  readonly ID: string;
  readonly ServiceID: string;
}

export interface LogPublisherOptions {
  readonly nodeId: string;
  readonly material: TlsMaterial;
  readonly clusterId: string;
  /** The manager the agent's session is with now (host:port), or null. */
  readonly manager: () => string | null;
  /** The executor's logs directory: `<logsDir>/<taskId>/log`. */
  readonly logsDir: string;
  readonly runc: RuncLocation;
  /** The tasks assigned to this node (a following subscription picks up new ones of its services). */
  readonly tasks: () => Iterable<PublishedTask>;
  readonly logger: Logger;
  /** How often the manager address and the streams are checked (default 500 ms). */
  readonly checkMs?: number;
  /** How often followed logs are read (default 250 ms). */
  readonly pollMs?: number;
  /** Longest an exec may run before it is killed (default 1 h). */
  readonly maxExecMs?: number;
  /** Execs running at once on this node (default 32); more are answered with an error. */
  readonly maxExecs?: number;
  /** Subscriptions served at once (default 64); more are answered at once with `close`. */
  readonly maxSubscriptions?: number;
}

/** Lines per PublishLogsMessage. */
const BATCH_LINES = 500;
/** Longest wait for a PublishLogs stream to drain before the subscription is dropped. */
const DRAIN_WAIT_MS = 30_000;

const STREAM_OF: Readonly<Record<LogStream, LogSubscriptionOptions_Stream>> = {
  stdout: LogSubscriptionOptions_Stream.STREAM_STDOUT,
  stderr: LogSubscriptionOptions_Stream.STREAM_STDERR,
};

interface Connection {
  readonly addr: string;
  readonly client: LogBrokerClient;
  readonly calls: grpc.ClientReadableStream<unknown>[];
  dead: boolean;
}

interface Served {
  stop(): void;
}

function filterOf(msg: SubscriptionMessage): LogFilter {
  const o = msg.options;
  const streams = new Set<LogStream>();
  for (const s of o?.streams ?? []) {
    if (s === LogSubscriptionOptions_Stream.STREAM_STDOUT) streams.add('stdout');
    if (s === LogSubscriptionOptions_Stream.STREAM_STDERR) streams.add('stderr');
  }
  return { streams, sinceMs: o?.sinceUnixMs ?? 0, tail: o?.tail ?? -1 };
}

function toMessage(nodeId: string, task: { id: string; serviceId: string }, e: LogEntry): LogMessage {
  const ts = Date.parse(e.ts);
  return {
    context: { serviceId: task.serviceId, nodeId, taskId: task.id },
    timestampUnixMs: Number.isFinite(ts) ? ts : 0,
    stream: STREAM_OF[e.stream],
    data: Buffer.from(e.partial === true ? e.line : `${e.line}\n`, 'utf8'),
    attrs: {},
  };
}

export class LogPublisher {
  private readonly log: Logger;
  private conn: Connection | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly subs = new Map<string, Served>();
  private readonly execs = new Map<string, RunningExec>();
  private closed = false;

  constructor(private readonly o: LogPublisherOptions) {
    this.log = o.logger.child({ component: 'log-publisher' });
  }

  start(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setInterval(() => this.check(), this.o.checkMs ?? 500);
    this.check();
  }

  /** The manager the streams are open to now (tests, status). */
  get connectedTo(): string | null {
    return this.conn !== null && !this.conn.dead ? this.conn.addr : null;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.disconnect();
  }

  // ---------------------------------------------------------------------------- streams

  private check(): void {
    if (this.closed) return;
    const addr = this.o.manager();
    if (this.conn !== null && (this.conn.dead || this.conn.addr !== addr)) this.disconnect();
    if (this.conn === null && addr !== null) this.connect(addr);
  }

  private disconnect(): void {
    const c = this.conn;
    this.conn = null;
    for (const s of this.subs.values()) s.stop();
    this.subs.clear();
    for (const e of this.execs.values()) e.kill();
    this.execs.clear();
    if (c === null) return;
    for (const call of c.calls) call.cancel();
    c.client.close();
  }

  private connect(addr: string): void {
    const client = new LogBrokerClient(addr, clusterChannelCredentials(this.o.material, this.o.clusterId), CLUSTER_CHANNEL_OPTIONS);
    const conn: Connection = { addr, client, calls: [], dead: false };
    this.conn = conn;
    const die = (why: string) => (): void => {
      if (conn.dead) return;
      conn.dead = true;
      this.log.debug({ manager: addr, why }, 'log publisher: stream to the manager ended; reconnecting');
    };
    const subs = client.listenSubscriptions({});
    conn.calls.push(subs);
    subs.on('data', (msg: SubscriptionMessage) => this.onSubscription(conn, msg));
    subs.on('error', die('subscriptions stream failed'));
    subs.on('end', die('subscriptions stream ended'));
    const execs = client.listenExecs({});
    conn.calls.push(execs);
    execs.on('data', (req: ExecRequest) => this.onExec(conn, req));
    execs.on('error', die('exec stream failed'));
    execs.on('end', die('exec stream ended'));
  }

  // ------------------------------------------------------------------------- subscriptions

  private onSubscription(conn: Connection, msg: SubscriptionMessage): void {
    if (msg.close) {
      this.subs.get(msg.id)?.stop();
      this.subs.delete(msg.id);
      return;
    }
    if (this.subs.has(msg.id)) return;
    if (this.subs.size >= (this.o.maxSubscriptions ?? 64)) {
      this.log.warn({ subscription: msg.id }, 'log publisher: too many subscriptions; answering with nothing');
      const call = conn.client.publishLogs(() => undefined);
      call.write({ subscriptionId: msg.id, messages: [], close: true } satisfies PublishLogsMessage);
      call.end();
      return;
    }
    this.subs.set(msg.id, this.serve(conn, msg));
  }

  /** The tasks of this node a subscription selects (tasks named, and tasks of the services named). */
  private matching(msg: SubscriptionMessage, known: Map<string, string>): { id: string; serviceId: string }[] {
    const sel = msg.selector;
    if (sel === undefined) return [];
    if (sel.nodeIds.length > 0 && !sel.nodeIds.includes(this.o.nodeId)) return [];
    const out = new Map<string, string>();
    for (const id of sel.taskIds) out.set(id, known.get(id) ?? '');
    const services = new Set(sel.serviceIds);
    for (const [id, svc] of known) if (services.has(svc)) out.set(id, svc);
    return [...out].map(([id, serviceId]) => ({ id, serviceId }));
  }

  private knownTasks(): Map<string, string> {
    const m = new Map<string, string>();
    for (const t of this.o.tasks()) m.set(t.ID, t.ServiceID);
    return m;
  }

  private serve(conn: Connection, msg: SubscriptionMessage): Served {
    const filter = filterOf(msg);
    const follow = msg.options?.follow ?? false;
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    const call = conn.client.publishLogs((err) => {
      if (err !== null && !stopped) this.log.debug({ err: err.message, subscription: msg.id }, 'log publisher: publish stream failed');
      stopped = true;
    });
    call.on('error', () => undefined);
    const followers = new Map<string, { follower: TaskLogFollower; task: { id: string; serviceId: string } }>();
    const send = async (messages: LogMessage[], close = false): Promise<void> => {
      for (let i = 0; i < messages.length || (close && i === 0); i += BATCH_LINES) {
        if (stopped) return;
        const ok = call.write({ subscriptionId: msg.id, messages: messages.slice(i, i + BATCH_LINES), close: close && i + BATCH_LINES >= messages.length } satisfies PublishLogsMessage);
        if (!ok && !(await drained(call, DRAIN_WAIT_MS))) {
          // The manager stopped reading: give up on this subscription rather than buffer without end.
          this.log.warn({ subscription: msg.id, waitedMs: DRAIN_WAIT_MS }, 'log publisher: the manager does not read; subscription dropped');
          stopped = true;
          if (timer !== null) clearInterval(timer);
          call.end();
          return;
        }
      }
    };
    // Tasks there at the start get the tail; a task that comes later is new: all its lines are.
    const addTasks = (tasks: { id: string; serviceId: string }[], initial: boolean): LogMessage[] => {
      const out: { e: LogEntry; m: LogMessage }[] = [];
      for (const task of tasks) {
        if (followers.has(task.id)) continue;
        const follower = new TaskLogFollower(join(this.o.logsDir, task.id, 'log'), initial ? filter : { ...filter, tail: -1 });
        followers.set(task.id, { follower, task });
        for (const e of follower.snapshot()) out.push({ e, m: toMessage(this.o.nodeId, task, e) });
      }
      // The node's lines in time order across its tasks.
      out.sort((a, b) => a.m.timestampUnixMs - b.m.timestampUnixMs);
      return out.map((x) => x.m);
    };
    const run = async (): Promise<void> => {
      const first = addTasks(this.matching(msg, this.knownTasks()), true);
      if (!follow) {
        await send(first, true);
        call.end();
        stopped = true;
        this.subs.delete(msg.id);
        return;
      }
      await send(first);
      const pollMs = this.o.pollMs ?? 250;
      let busy = false;
      // Runs until the manager closes the subscription or the connection goes (stop()).
      timer = setInterval(() => {
        if (busy || stopped) return;
        busy = true;
        const fresh = addTasks(this.matching(msg, this.knownTasks()), false);
        const appended: LogMessage[] = [];
        for (const { follower, task } of followers.values()) for (const e of follower.poll()) appended.push(toMessage(this.o.nodeId, task, e));
        appended.sort((a, b) => a.timestampUnixMs - b.timestampUnixMs);
        void send([...fresh, ...appended]).finally(() => {
          busy = false;
        });
      }, pollMs);
    };
    run().catch((err: unknown) => {
      this.log.warn({ err, subscription: msg.id }, 'log publisher: reading logs failed');
      stopped = true;
      call.end();
    });
    return {
      stop: () => {
        if (timer !== null) clearInterval(timer);
        if (stopped) return;
        stopped = true;
        call.end();
      },
    };
  }

  // ------------------------------------------------------------------------------- exec

  private onExec(conn: Connection, req: ExecRequest): void {
    if (req.cancel) {
      this.execs.get(req.id)?.kill();
      return;
    }
    if (this.execs.has(req.id)) return;
    const call = conn.client.publishExec(() => undefined);
    call.on('error', () => undefined);
    const msg = (m: Partial<ExecMessage>): ExecMessage => ({ execId: req.id, stream: LogSubscriptionOptions_Stream.STREAM_UNSPECIFIED, data: Buffer.alloc(0), exited: false, exitCode: 0, error: '', nodeId: this.o.nodeId, ...m });
    if (this.execs.size >= (this.o.maxExecs ?? 32)) {
      call.write(msg({ exited: true, exitCode: -1, error: `node ${this.o.nodeId} runs too many exec sessions (${this.execs.size}); retry later` }));
      call.end();
      return;
    }
    this.log.info({ taskId: req.taskId, argv: req.argv }, 'exec in a task container');
    const running = startExec(
      this.o.runc,
      { containerId: req.taskId, argv: req.argv, env: req.env, user: req.user, workdir: req.workdir },
      {
        output: (stream, data) => {
          call.write(msg({ stream: STREAM_OF[stream], data }));
        },
        exit: (exitCode, error) => {
          this.execs.delete(req.id);
          call.write(msg({ exited: true, exitCode, error }));
          call.end();
        },
      },
      this.o.maxExecMs ?? 3_600_000,
    );
    this.execs.set(req.id, running);
  }
}

/** Resolves true once the stream drained, false after `limitMs` without. */
async function drained<T>(call: grpc.ClientWritableStream<T>, limitMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const t = setTimeout(() => finish(false), limitMs);
    const onDrain = (): void => finish(true);
    function finish(ok: boolean): void {
      clearTimeout(t);
      call.off('drain', onDrain);
      resolve(ok);
    }
    call.once('drain', onDrain);
  });
}
