// The log broker: matches log subscribers (the daemon's `/services/{id}/logs`, another manager's
// Logs.SubscribeLogs) with the workers that hold the lines, and routes `shoal exec` to the node that
// runs the task. It lives on every manager, but workers connect their ListenSubscriptions and
// ListenExecs streams to the manager their dispatcher session is with — the leader — so the
// leader's broker is the one that serves; a follower's daemon forwards to it (route.ts).
//
//   subscribe(request, sink)
//     → tasks resolved from the store (selector: services, tasks, nodes; only assigned tasks)
//     → not following: a SubscriptionMessage to each node holding a selected task, over its
//       ListenSubscriptions stream; the sink ends once each of them sent `close` (or its stream
//       broke, or `noFollowTimeoutMs` passed: those nodes are listed as incomplete, as are nodes
//       with no stream open)
//     → following: the message goes to every connected node (and to nodes that connect later),
//       which publish new lines of tasks of the selected services as they appear; it ends when
//       the subscriber cancels (a `close` SubscriptionMessage then tells the nodes to stop)
//   publish(node, PublishLogsMessage) → context completed (node from the certificate, service from
//       the store) → sink.write
//   exec(request, sink) → ExecRequest to the task's node over ListenExecs → its PublishExec output
//       → sink.output…, then sink.exit once (exit code, or the error that stopped it)
import { randomUUID } from 'node:crypto';

import type { Logger } from 'pino';

import type { Task } from '../store/types.js';
import {
  LogSubscriptionOptions_Stream,
  type ExecMessage,
  type ExecRequest,
  type LogMessage,
  type LogSelector,
  type LogSubscriptionOptions,
  type PublishLogsMessage,
  type SubscriptionMessage,
} from '../../proto/gen/shoal/logs.js';
import { LogBrokerError } from './errors.js';

/** What the broker reads from the store. */
export interface TaskSource {
  get(kind: 'task', id: string): Task | undefined;
  find(kind: 'task'): Task[];
}

export interface LogSubscriptionRequest {
  readonly selector: LogSelector;
  readonly options: LogSubscriptionOptions;
}

export interface LogOutcome {
  /** Nodes whose lines could not all be read (not connected, stream broken, too slow). */
  readonly incomplete: readonly string[];
  readonly error?: LogBrokerError;
}

export interface LogSink {
  write(messages: readonly LogMessage[]): void;
  /** Called once: every selected node answered, the subscriber cancelled, or it failed. */
  end(outcome: LogOutcome): void;
}

export type ExecStream = 'stdout' | 'stderr';

export interface ExecResult {
  /** The command's exit code; -1 when it could not run or its node went away. */
  readonly exitCode: number;
  /** Why it could not run, '' when it ran. */
  readonly error: string;
  readonly nodeId: string;
}

export interface ExecSink {
  output(stream: ExecStream, data: Uint8Array): void;
  /** Called once. */
  exit(result: ExecResult): void;
}

export interface Cancel {
  cancel(): void;
}

export interface LogBrokerOptions {
  readonly tasks: TaskSource;
  readonly logger: Logger;
  /** A subscription that does not follow ends after this long even when nodes did not answer (default 30 s). */
  readonly noFollowTimeoutMs?: number;
  /** Subscriptions open at once (default 256); more are refused. */
  readonly maxSubscriptions?: number;
  /** Exec sessions open at once (default 256); more are refused. */
  readonly maxExecs?: number;
}

interface Listener<M> {
  readonly token: number;
  readonly send: (msg: M) => void;
}

interface Subscription {
  readonly id: string;
  readonly request: LogSubscriptionRequest;
  readonly sink: LogSink;
  /** Nodes that were sent the subscription. */
  readonly sentTo: Set<string>;
  /** Not following: nodes that have not closed yet. */
  readonly pending: Set<string>;
  readonly incomplete: Set<string>;
  timer: NodeJS.Timeout | null;
}

interface ExecSession {
  readonly id: string;
  readonly nodeId: string;
  readonly sink: ExecSink;
}

const DEFAULT_NO_FOLLOW_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_SUBSCRIPTIONS = 256;
const DEFAULT_MAX_EXECS = 256;

/** Tasks the selector names that are assigned to a node (the selector's fields are ANDed across kinds, ORed within). */
export function selectTasks(tasks: readonly Task[], selector: LogSelector): Task[] {
  const services = new Set(selector.serviceIds);
  const ids = new Set(selector.taskIds);
  const nodes = new Set(selector.nodeIds);
  return tasks.filter((t) => {
    if (t.NodeID === '') return false;
    if (services.size > 0 || ids.size > 0) {
      if (!services.has(t.ServiceID) && !ids.has(t.ID)) return false;
    }
    return nodes.size === 0 || nodes.has(t.NodeID);
  });
}

export class LogBroker {
  private readonly log: Logger;
  private readonly subListeners = new Map<string, Listener<SubscriptionMessage>>();
  private readonly execListeners = new Map<string, Listener<ExecRequest>>();
  private readonly subs = new Map<string, Subscription>();
  private readonly execs = new Map<string, ExecSession>();
  private nextToken = 1;
  private closed = false;

  constructor(private readonly o: LogBrokerOptions) {
    this.log = o.logger;
  }

  /** Nodes with a ListenSubscriptions stream open here. */
  get connectedNodes(): string[] {
    return [...this.subListeners.keys()];
  }

  get openSubscriptions(): number {
    return this.subs.size;
  }

  // ------------------------------------------------------------------------------ workers

  /**
   * A node's ListenSubscriptions stream opened: it gets every following subscription now, and
   * later ones as they come. A newer stream of the same node replaces the older one. Returns the
   * function to call when the stream ends.
   */
  listen(nodeId: string, send: (msg: SubscriptionMessage) => void): () => void {
    // A node that reconnects starts over: what its old stream owed is lost, following subscriptions are resent.
    if (this.subListeners.has(nodeId)) this.dropSubscriptionNode(nodeId);
    const token = this.nextToken++;
    this.subListeners.set(nodeId, { token, send });
    this.log.debug({ nodeId }, 'log broker: node listening for subscriptions');
    for (const s of this.subs.values()) {
      if (s.request.options.follow && !s.sentTo.has(nodeId)) this.sendTo(s, nodeId);
    }
    return () => {
      if (this.subListeners.get(nodeId)?.token === token) this.dropSubscriptionNode(nodeId);
    };
  }

  /** The node's subscription stream is gone: lines it still owed are lost. */
  private dropSubscriptionNode(nodeId: string): void {
    this.subListeners.delete(nodeId);
    for (const s of [...this.subs.values()]) {
      s.sentTo.delete(nodeId);
      if (s.pending.delete(nodeId)) {
        s.incomplete.add(nodeId);
        this.maybeFinish(s);
      }
    }
  }

  /** One message of a node's PublishLogs stream. Lines for a subscription the node was not sent are dropped. */
  publish(nodeId: string, msg: PublishLogsMessage): void {
    const s = this.subs.get(msg.subscriptionId);
    if (s === undefined || !s.sentTo.has(nodeId)) return;
    if (msg.messages.length > 0) {
      const out = msg.messages.map((m) => this.completeContext(nodeId, m));
      try {
        s.sink.write(out);
      } catch (err) {
        this.finish(s, err instanceof LogBrokerError ? err : new LogBrokerError('ERR_LOGS_SLOW_READER', (err as Error).message));
        return;
      }
    }
    if (msg.close && s.pending.delete(nodeId)) this.maybeFinish(s);
  }

  /** A node's PublishLogs stream for a subscription broke before `close`. */
  publisherFailed(nodeId: string, subscriptionId: string): void {
    const s = this.subs.get(subscriptionId);
    if (s === undefined || !s.pending.delete(nodeId)) return;
    s.incomplete.add(nodeId);
    this.maybeFinish(s);
  }

  /** A node's ListenExecs stream opened; returns the function to call when it ends. */
  listenExecs(nodeId: string, send: (req: ExecRequest) => void): () => void {
    // A node that reconnects killed what it ran for its old stream.
    if (this.execListeners.has(nodeId)) this.dropExecNode(nodeId);
    const token = this.nextToken++;
    this.execListeners.set(nodeId, { token, send });
    return () => {
      if (this.execListeners.get(nodeId)?.token === token) this.dropExecNode(nodeId);
    };
  }

  private dropExecNode(nodeId: string): void {
    this.execListeners.delete(nodeId);
    for (const e of [...this.execs.values()]) {
      if (e.nodeId === nodeId) this.endExec(e, { exitCode: -1, error: `node ${nodeId} went away while the command ran`, nodeId });
    }
  }

  /** One message of a node's PublishExec stream. */
  publishExec(nodeId: string, msg: ExecMessage): void {
    const e = this.execs.get(msg.execId);
    if (e === undefined || e.nodeId !== nodeId) return;
    if (msg.data.length > 0) {
      const stream: ExecStream = msg.stream === LogSubscriptionOptions_Stream.STREAM_STDERR ? 'stderr' : 'stdout';
      e.sink.output(stream, msg.data);
    }
    if (msg.exited) this.endExec(e, { exitCode: msg.exitCode, error: msg.error, nodeId });
  }

  /** A node's PublishExec stream broke before the exit message. */
  execPublisherFailed(nodeId: string, execId: string): void {
    const e = this.execs.get(execId);
    if (e === undefined || e.nodeId !== nodeId) return;
    this.endExec(e, { exitCode: -1, error: `the output stream from node ${nodeId} broke`, nodeId });
  }

  // -------------------------------------------------------------------------- subscribers

  /** Starts a subscription; the sink hears every line and then the end. */
  subscribe(request: LogSubscriptionRequest, sink: LogSink): Cancel {
    if (this.closed) throw new LogBrokerError('ERR_LOGS_CLOSED', 'the log broker is stopped (this manager is shutting down)');
    if (this.subs.size >= (this.o.maxSubscriptions ?? DEFAULT_MAX_SUBSCRIPTIONS)) {
      throw new LogBrokerError('ERR_NODE_UNAVAILABLE', `too many log subscriptions are open (${this.subs.size}); retry later`);
    }
    const streams = request.options.streams.filter((x) => x !== LogSubscriptionOptions_Stream.STREAM_UNSPECIFIED);
    if (streams.length === 0) throw new LogBrokerError('ERR_LOGS_INVALID', 'Bad parameters: you must choose at least one stream');
    const s: Subscription = { id: randomUUID(), request, sink, sentTo: new Set(), pending: new Set(), incomplete: new Set(), timer: null };
    this.subs.set(s.id, s);
    if (request.options.follow) {
      for (const nodeId of this.subListeners.keys()) this.sendTo(s, nodeId);
    } else {
      const nodes = new Set(selectTasks(this.o.tasks.find('task'), request.selector).map((t) => t.NodeID));
      for (const nodeId of nodes) {
        if (!this.subListeners.has(nodeId)) {
          s.incomplete.add(nodeId);
          continue;
        }
        s.pending.add(nodeId);
        this.sendTo(s, nodeId);
      }
      s.timer = setTimeout(() => {
        for (const n of s.pending) s.incomplete.add(n);
        this.finish(s);
      }, this.o.noFollowTimeoutMs ?? DEFAULT_NO_FOLLOW_TIMEOUT_MS);
      // Every answer may already be in (no node to ask): end on the next turn, after the caller returned.
      queueMicrotask(() => this.maybeFinish(s));
    }
    this.log.debug({ subscription: s.id, follow: request.options.follow, nodes: [...s.sentTo] }, 'log broker: subscription opened');
    return { cancel: () => this.finish(s) };
  }

  /** Runs argv in the task's container on its node; the sink hears its output and then its exit. */
  exec(request: ExecRequest, sink: ExecSink): Cancel {
    if (this.closed) throw new LogBrokerError('ERR_LOGS_CLOSED', 'the log broker is stopped (this manager is shutting down)');
    if (request.argv.length === 0) throw new LogBrokerError('ERR_LOGS_INVALID', 'exec needs a command to run');
    if (this.execs.size >= (this.o.maxExecs ?? DEFAULT_MAX_EXECS)) throw new LogBrokerError('ERR_NODE_UNAVAILABLE', `too many exec sessions are open (${this.execs.size}); retry later`);
    const task = this.o.tasks.get('task', request.taskId);
    if (task === undefined) throw new LogBrokerError('ERR_LOGS_NOT_FOUND', `task ${request.taskId} not found`);
    if (task.NodeID === '') throw new LogBrokerError('ERR_EXEC_NOT_RUNNING', `task ${task.ID} is not assigned to a node yet (state ${task.Status.State})`);
    if (task.Status.State !== 'running') throw new LogBrokerError('ERR_EXEC_NOT_RUNNING', `task ${task.ID} is not running (state ${task.Status.State})`);
    const listener = this.execListeners.get(task.NodeID);
    if (listener === undefined) throw new LogBrokerError('ERR_NODE_UNAVAILABLE', `node ${task.NodeID}, which runs task ${task.ID}, is not connected to the leader`);
    const e: ExecSession = { id: randomUUID(), nodeId: task.NodeID, sink };
    this.execs.set(e.id, e);
    listener.send({ ...request, id: e.id, taskId: task.ID, cancel: false });
    return {
      cancel: () => {
        if (!this.execs.has(e.id)) return;
        this.execListeners.get(e.nodeId)?.send({ id: e.id, taskId: task.ID, argv: [], env: [], user: '', workdir: '', cancel: true });
        this.endExec(e, { exitCode: -1, error: 'cancelled', nodeId: e.nodeId });
      },
    };
  }

  /** Ends every subscription and exec (manager closing); nothing new is accepted. */
  close(): void {
    this.closed = true;
    const err = new LogBrokerError('ERR_LOGS_CLOSED', 'the log broker stopped (this manager is shutting down)');
    for (const s of [...this.subs.values()]) this.finish(s, err);
    for (const e of [...this.execs.values()]) this.endExec(e, { exitCode: -1, error: err.message, nodeId: e.nodeId });
  }

  // ----------------------------------------------------------------------------- internal

  private sendTo(s: Subscription, nodeId: string): void {
    const l = this.subListeners.get(nodeId);
    if (l === undefined) return;
    s.sentTo.add(nodeId);
    const { selector, options } = s.request;
    // Tasks resolved here travel with the selector, so a node also finds lines of tasks it no
    // longer has in its assignment set (shut down, logs still on disk).
    const taskIds = selectTasks(this.o.tasks.find('task'), selector)
      .filter((t) => t.NodeID === nodeId)
      .map((t) => t.ID);
    const ids = [...new Set([...selector.taskIds, ...taskIds])];
    l.send({ id: s.id, selector: { serviceIds: selector.serviceIds, nodeIds: selector.nodeIds, taskIds: ids }, options, close: false });
  }

  private completeContext(nodeId: string, m: LogMessage): LogMessage {
    const taskId = m.context?.taskId ?? '';
    const serviceId = m.context?.serviceId || (this.o.tasks.get('task', taskId)?.ServiceID ?? '');
    return { ...m, context: { taskId, serviceId, nodeId } };
  }

  private maybeFinish(s: Subscription): void {
    if (!s.request.options.follow && s.pending.size === 0) this.finish(s);
  }

  private finish(s: Subscription, error?: LogBrokerError): void {
    if (!this.subs.delete(s.id)) return;
    if (s.timer !== null) clearTimeout(s.timer);
    for (const nodeId of s.sentTo) {
      if (!s.request.options.follow && !s.pending.has(nodeId)) continue; // it is done already
      this.subListeners.get(nodeId)?.send({ id: s.id, close: true });
    }
    const outcome: LogOutcome = { incomplete: [...s.incomplete].sort(), ...(error !== undefined ? { error } : {}) };
    this.log.debug({ subscription: s.id, incomplete: outcome.incomplete, error: error?.message }, 'log broker: subscription ended');
    try {
      s.sink.end(outcome);
    } catch (err) {
      this.log.warn({ err }, 'log broker: a subscriber failed at the end of its stream');
    }
  }

  private endExec(e: ExecSession, result: ExecResult): void {
    if (!this.execs.delete(e.id)) return;
    try {
      e.sink.exit(result);
    } catch (err) {
      this.log.warn({ err }, 'log broker: an exec client failed at the end of its stream');
    }
  }
}
