// `GET /services/{id}/logs`, `GET /tasks/{id}/logs` (Docker's API, shared/reference/docker-api.md §4)
// and shoal's own `POST /services/{id}/exec`, `POST /tasks/{id}/exec` on a manager. Both go through
// the log broker (manager/logbroker): this manager's when it leads, else the leader's.
//
// Logs: 200 at once; one frame per line (stdout 1, stderr 2; raw bytes for a TTY service), payload
// `[<timestamp> ][<details> ]<line>`; errors found later (a node that could not be read) become a
// final frame on stream 3, `Error grabbing logs: …`, as dockerd writes them.
//
// Exec: body `{"Cmd": [...], "Env": [...], "User": "", "WorkingDir": ""}`; a service picks one of its
// running tasks. Errors before the command starts are ordinary API errors (404 no such service or
// task, 409 not running, 503 node not connected). Then 200 with frames on stream 1/2 as the command
// writes, and a last frame on stream 3 holding JSON `{"ExitCode": n, "Error": "", "TaskID": "", "NodeID": ""}`.
import type { ServerResponse } from 'node:http';

import { LogSubscriptionOptions_Stream, type LogMessage } from '../../../proto/gen/shoal/logs.js';
import { LogBrokerError } from '../../../manager/logbroker/errors.js';
import { managerLocator, openExec, openLogs, type BrokerLocator } from '../../../manager/logbroker/route.js';
import type { Cancel, LogOutcome } from '../../../manager/logbroker/broker.js';
import type { Task } from '../../../manager/store/types.js';
import { ApiError, ConflictError, InternalError, InvalidArgumentError, MSG_NO_SWARM, MSG_WORKER_NOT_MANAGER, NotFoundError, UnavailableError } from '../api/errors.js';
import { boolValue } from '../api/query.js';
import type { ApiRequest, ApiServer, Reply } from '../api/server.js';
import { reply } from '../api/server.js';
import type { ControlBackend } from './backend.js';
import type { SwarmPlugin } from './plugin.js';
import { encodeFrame, formatDetails, STDERR, STDOUT, SYSTEM_ERR, timestampNano } from './stdcopy.js';

/** A log client may fall this far behind before its stream is ended as too slow. */
export const MAX_RESPONSE_BUFFER_BYTES = 16 * 1024 * 1024;
export const MULTIPLEXED = 'application/vnd.docker.multiplexed-stream';
export const RAW = 'application/vnd.docker.raw-stream';

export interface LogQuery {
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly follow: boolean;
  /** Negative: all. */
  readonly tail: number;
  /** Unix ms; 0: from the start. */
  readonly sinceMs: number;
  readonly timestamps: boolean;
  readonly details: boolean;
}

/** Docker's `since`: Unix seconds with an optional fraction (what the CLI sends), or an RFC 3339 time. */
export function parseSince(raw: string | null): number {
  if (raw === null || raw === '' || raw === '0') return 0;
  if (/^\d+(\.\d+)?$/.test(raw)) {
    const [s, frac = ''] = raw.split('.');
    return Number(s) * 1000 + Math.floor(Number(`0.${frac === '' ? '0' : frac}`) * 1000);
  }
  const t = Date.parse(raw);
  if (!Number.isFinite(t)) throw new InvalidArgumentError(`invalid value for since: ${raw}`);
  return t;
}

export function parseLogQuery(q: URLSearchParams): LogQuery {
  const tailRaw = (q.get('tail') ?? 'all').trim();
  let tail = -1;
  if (tailRaw !== '' && tailRaw !== 'all') {
    if (!/^-?\d+$/.test(tailRaw)) throw new InvalidArgumentError(`invalid value for tail: ${tailRaw} (want a number or all)`);
    tail = Number(tailRaw) < 0 ? -1 : Number(tailRaw);
  }
  return {
    stdout: boolValue(q, 'stdout'),
    stderr: boolValue(q, 'stderr'),
    follow: boolValue(q, 'follow'),
    tail,
    sinceMs: parseSince(q.get('since')),
    timestamps: boolValue(q, 'timestamps'),
    details: boolValue(q, 'details'),
  };
}

/** The payload of one log line as dockerd writes it. */
export function logLine(m: LogMessage, q: Pick<LogQuery, 'timestamps' | 'details'>): Buffer {
  let prefix = '';
  if (q.timestamps) prefix += `${timestampNano(m.timestampUnixMs)} `;
  if (q.details) {
    const attrs: Record<string, string> = {
      ...m.attrs,
      'com.docker.swarm.node.id': m.context?.nodeId ?? '',
      'com.docker.swarm.service.id': m.context?.serviceId ?? '',
      'com.docker.swarm.task.id': m.context?.taskId ?? '',
    };
    prefix += `${formatDetails(attrs)} `;
  }
  return prefix === '' ? Buffer.from(m.data) : Buffer.concat([Buffer.from(prefix, 'utf8'), m.data]);
}

function locatorOf(p: SwarmPlugin): BrokerLocator {
  const m = p.manager;
  if (m === null) throw new UnavailableError(p.inSwarm ? MSG_WORKER_NOT_MANAGER : MSG_NO_SWARM);
  return managerLocator(m, () => m.leaderServices?.logBroker ?? null);
}

function apiErrorOf(err: unknown): unknown {
  if (!(err instanceof LogBrokerError)) return err;
  switch (err.code) {
    case 'ERR_LOGS_NOT_FOUND':
      return new NotFoundError(err.message);
    case 'ERR_EXEC_NOT_RUNNING':
      return new ConflictError(err.message);
    case 'ERR_LOGS_INVALID':
      return new InvalidArgumentError(err.message);
    case 'ERR_NODE_UNAVAILABLE':
    case 'ERR_NO_LEADER':
    case 'ERR_LOGS_CLOSED':
      return new UnavailableError(err.message);
    default:
      return new InternalError(err.message);
  }
}

function incompleteMessage(o: LogOutcome): string | null {
  if (o.error !== undefined) return `Error grabbing logs: ${o.error.message}`;
  if (o.incomplete.length === 0) return null;
  const reasons = o.incomplete.map((n) => `node ${n} is not available`).join(', ');
  return `Error grabbing logs: warning: incomplete log stream. some logs could not be retrieved for the following reasons: ${reasons}`;
}

/** Streams the selected logs into `res` until they end or the client goes away. */
async function streamLogs(locator: BrokerLocator, req: ApiRequest, selector: { serviceIds: string[]; taskIds: string[] }, tty: boolean): Promise<Reply> {
  const q = parseLogQuery(req.query);
  if (!q.stdout && !q.stderr) throw new ApiError(500, 'ERR_INTERNAL', 'Bad parameters: you must choose at least one stream');
  const streams: LogSubscriptionOptions_Stream[] = [];
  if (q.stdout) streams.push(LogSubscriptionOptions_Stream.STREAM_STDOUT);
  if (q.stderr) streams.push(LogSubscriptionOptions_Stream.STREAM_STDERR);
  const res: ServerResponse = req.response;
  let headed = false;
  const head = (): void => {
    if (headed) return;
    headed = true;
    res.writeHead(200, { 'Content-Type': tty ? RAW : MULTIPLEXED });
    res.flushHeaders();
  };
  await new Promise<void>((resolve, reject) => {
    let handle: Cancel | null = null;
    let ended = false;
    const onAbort = (): void => handle?.cancel();
    openLogs(
      locator,
      { selector: { ...selector, nodeIds: [] }, options: { streams, follow: q.follow, tail: q.tail, sinceUnixMs: q.sinceMs } },
      {
        write: (messages) => {
          if (res.writableLength > MAX_RESPONSE_BUFFER_BYTES) {
            throw new LogBrokerError('ERR_LOGS_SLOW_READER', `the client reads too slowly: more than ${MAX_RESPONSE_BUFFER_BYTES} bytes are waiting`);
          }
          head();
          for (const m of messages) {
            const line = logLine(m, q);
            res.write(tty ? line : encodeFrame(m.stream === LogSubscriptionOptions_Stream.STREAM_STDERR ? STDERR : STDOUT, line));
          }
        },
        end: (outcome) => {
          if (ended) return;
          ended = true;
          req.signal.removeEventListener('abort', onAbort);
          head();
          const msg = incompleteMessage(outcome);
          if (msg !== null && !tty && !req.signal.aborted) res.write(encodeFrame(SYSTEM_ERR, msg));
          res.end();
          resolve();
        },
      },
    ).then(
      (h) => {
        handle = h;
        if (req.signal.aborted) h.cancel();
        else {
          req.signal.addEventListener('abort', onAbort, { once: true });
          // Status 200 goes out at once, as dockerd does, also before any line exists (follow).
          if (!ended) head();
        }
      },
      (err: unknown) => reject(apiErrorOf(err)),
    );
  });
  return reply.handled();
}

function backendOf(p: SwarmPlugin): ControlBackend {
  const b = p.backend;
  if (b === null) throw new UnavailableError(p.inSwarm ? MSG_WORKER_NOT_MANAGER : MSG_NO_SWARM);
  return b;
}

/** A running task of the service: one on this node first, else the lowest slot. */
export function pickRunningTask(tasks: readonly Task[], localNodeId: string): Task | undefined {
  const running = tasks.filter((t) => t.Status.State === 'running' && t.DesiredState === 'running' && t.NodeID !== '');
  running.sort((a, b) => Number(b.NodeID === localNodeId) - Number(a.NodeID === localNodeId) || a.Slot - b.Slot || a.ID.localeCompare(b.ID));
  return running[0];
}

function stringList(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidArgumentError(`${what} must be a list of strings`);
  return v as string[];
}

async function execIn(p: SwarmPlugin, req: ApiRequest, task: Task): Promise<Reply> {
  const body = (await req.json()) ?? {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidArgumentError('exec needs a JSON object body: {"Cmd": ["sh", "-c", "…"]}');
  const b = body as Record<string, unknown>;
  const argv = stringList(b['Cmd'], 'Cmd');
  if (argv.length === 0) throw new InvalidArgumentError('exec needs a command: Cmd is empty');
  const locator = locatorOf(p);
  const res: ServerResponse = req.response;
  await new Promise<void>((resolve, reject) => {
    let started = false;
    let finished = false;
    const start = (): void => {
      if (started) return;
      started = true;
      res.writeHead(200, { 'Content-Type': MULTIPLEXED });
      res.flushHeaders();
    };
    let handle: Cancel | null = null;
    const onAbort = (): void => handle?.cancel();
    openExec(
      locator,
      {
        id: '',
        taskId: task.ID,
        argv,
        env: stringList(b['Env'], 'Env'),
        user: typeof b['User'] === 'string' ? b['User'] : '',
        workdir: typeof b['WorkingDir'] === 'string' ? b['WorkingDir'] : '',
        cancel: false,
      },
      {
        output: (stream, data) => {
          start();
          res.write(encodeFrame(stream === 'stderr' ? STDERR : STDOUT, data));
        },
        exit: (r) => {
          if (finished) return;
          finished = true;
          req.signal.removeEventListener('abort', onAbort);
          start();
          res.end(encodeFrame(SYSTEM_ERR, JSON.stringify({ ExitCode: r.exitCode, Error: r.error, TaskID: task.ID, NodeID: r.nodeId || task.NodeID })));
          resolve();
        },
      },
    ).then(
      (h) => {
        handle = h;
        if (req.signal.aborted) return void h.cancel();
        req.signal.addEventListener('abort', onAbort, { once: true });
        start();
      },
      (err: unknown) => reject(apiErrorOf(err)),
    );
  });
  return reply.handled();
}

export function registerLogRoutes(api: ApiServer, p: SwarmPlugin): void {
  api.route('GET', '/services/{id}/logs', (req) => {
    const b = backendOf(p);
    const s = b.api.getService(req.params['id']!);
    return streamLogs(locatorOf(p), req, { serviceIds: [s.ID], taskIds: [] }, s.Spec.TaskTemplate.ContainerSpec?.TTY === true);
  });
  api.route('GET', '/tasks/{id}/logs', (req) => {
    const b = backendOf(p);
    const t = b.api.getTask(req.params['id']!);
    return streamLogs(locatorOf(p), req, { serviceIds: [], taskIds: [t.ID] }, t.Spec.ContainerSpec?.TTY === true);
  });
  api.route('POST', '/tasks/{id}/exec', async (req) => {
    const b = backendOf(p);
    const t = b.api.getTask(req.params['id']!);
    if (t.Status.State !== 'running') throw new ConflictError(`task ${t.ID} is not running (state ${t.Status.State})`);
    return execIn(p, req, t);
  });
  api.route('POST', '/services/{id}/exec', async (req) => {
    const b = backendOf(p);
    const s = b.api.getService(req.params['id']!);
    const t = pickRunningTask(b.api.listTasks({ serviceIds: [s.ID] }), p.manager?.nodeId ?? '');
    if (t === undefined) throw new ConflictError(`service ${s.Spec.Name ?? s.ID} has no running task to exec into`);
    return execIn(p, req, t);
  });
}
