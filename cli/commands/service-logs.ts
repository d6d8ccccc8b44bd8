// `shoal service logs [-f] [--tail N] [-t] [--since T] [--raw] [--no-trunc] [--no-task-ids]
// [--no-resolve] [--details] SERVICE|TASK`: what the docker CLI does (docker-api.md §2.18) — the
// service (or, on 404, the task) is looked up, its logs are read as a multiplexed stream with
// details, and each line is printed as `name.slot.task12@hostname    | line`, stdout lines on
// stdout and stderr lines on stderr. A stream-3 frame is the daemon's error: printed, exit 1.
import type { IncomingMessage } from 'node:http';

import type { Argv } from 'yargs';

import type { ApiClient } from '../client/api-client.js';
import type { CliContext, GlobalArgs } from '../context.js';
import { CliError, DaemonResponseError } from '../errors.js';
import { FrameDecoder, parseDetails, STDERR, SYSTEM_ERR, type Frame } from '../daemon/swarm/stdcopy.js';

interface ServiceLike {
  readonly ID: string;
  readonly Spec: { readonly Name?: string; readonly Mode?: { readonly Replicated?: { readonly Replicas?: number } }; readonly TaskTemplate?: { readonly ContainerSpec?: { readonly TTY?: boolean } } };
}

interface TaskLike {
  readonly ID: string;
  readonly Slot: number;
  readonly ServiceID: string;
  readonly Spec?: { readonly ContainerSpec?: { readonly TTY?: boolean } };
}

interface NodeLike {
  readonly ID: string;
  readonly Description?: { readonly Hostname?: string };
}

export interface LogsOptions {
  readonly follow: boolean;
  readonly tail: string;
  readonly since?: string;
  readonly timestamps: boolean;
  readonly raw: boolean;
  readonly noTrunc: boolean;
  readonly noTaskIds: boolean;
  readonly noResolve: boolean;
  readonly details: boolean;
}

/** Lookups the printer needs, cached per ID for the life of the stream (as the docker CLI does). */
export interface ContextResolver {
  nodeName(id: string): Promise<string>;
  serviceName(id: string): Promise<string>;
  task(id: string): Promise<TaskLike>;
}

function isNotFound(err: unknown): boolean {
  return err instanceof DaemonResponseError && err.status === 404;
}

export function apiResolver(client: ApiClient, noResolve: boolean): ContextResolver {
  const nodes = new Map<string, Promise<string>>();
  const services = new Map<string, Promise<string>>();
  const tasks = new Map<string, Promise<TaskLike>>();
  const cached = <T>(m: Map<string, Promise<T>>, id: string, load: () => Promise<T>): Promise<T> => {
    let p = m.get(id);
    if (p === undefined) {
      p = load();
      m.set(id, p);
    }
    return p;
  };
  return {
    nodeName: (id) => (noResolve ? Promise.resolve(id) : cached(nodes, id, async () => (await client.get<NodeLike>(`/nodes/${encodeURIComponent(id)}`)).Description?.Hostname || id)),
    serviceName: (id) => (noResolve ? Promise.resolve(id) : cached(services, id, async () => (await client.get<ServiceLike>(`/services/${encodeURIComponent(id)}`, { insertDefaults: 'false' })).Spec.Name || id)),
    task: (id) => cached(tasks, id, () => client.get<TaskLike>(`/tasks/${encodeURIComponent(id)}`)),
  };
}

/** Digits of a slot number (docker's getMaxLength). */
export function digits(n: number): number {
  return String(n).length;
}

/** The `name.slot.task@node` column, padded to the service's replica count's width. */
export async function contextLabel(r: ContextResolver, details: Record<string, string>, padding: number, o: Pick<LogsOptions, 'noTrunc' | 'noTaskIds'>): Promise<string> {
  const nodeId = details['com.docker.swarm.node.id'];
  const serviceId = details['com.docker.swarm.service.id'];
  const taskId = details['com.docker.swarm.task.id'];
  if (nodeId === undefined) throw new CliError('ERR_DAEMON_RESPONSE', 'missing node id in details');
  if (serviceId === undefined) throw new CliError('ERR_DAEMON_RESPONSE', 'missing service id in details');
  if (taskId === undefined) throw new CliError('ERR_DAEMON_RESPONSE', 'missing task id in details');
  const [node, service, task] = await Promise.all([r.nodeName(nodeId), r.serviceName(serviceId), r.task(taskId)]);
  let name = `${service}.${task.Slot}`;
  if (!o.noTaskIds) name += `.${o.noTrunc ? task.ID : task.ID.slice(0, 12)}`;
  return `${name}@${node}${' '.repeat(Math.max(0, padding - digits(task.Slot)))}`;
}

/** One frame's line as the docker CLI prints it (the frame is one line: the daemon writes one per frame). */
export async function formatLine(r: ContextResolver, payload: Buffer, padding: number, o: LogsOptions, labels: Map<string, string>): Promise<string> {
  const text = payload.toString('utf8');
  const parts: string[] = [];
  let rest = text;
  const cut = (): string => {
    const i = rest.indexOf(' ');
    if (i < 0) throw new CliError('ERR_DAEMON_RESPONSE', `invalid context in log message: ${text}`);
    const p = rest.slice(0, i);
    rest = rest.slice(i + 1);
    return p;
  };
  if (o.timestamps) parts.push(cut());
  const detailsText = cut();
  let label = labels.get(detailsText);
  if (label === undefined) {
    label = await contextLabel(r, parseDetails(detailsText), padding, o);
    labels.set(detailsText, label);
  }
  let out = o.timestamps ? `${parts[0]} ` : '';
  out += `${label}    | `;
  if (o.details) {
    const d = parseDetails(detailsText);
    delete d['com.docker.swarm.node.id'];
    delete d['com.docker.swarm.service.id'];
    delete d['com.docker.swarm.task.id'];
    const extra = Object.entries(d).map(([k, v]) => `${k}=${v}`).join(',');
    if (extra !== '') out += `${extra} `;
  }
  return out + rest;
}

/** Reads a multiplexed log stream to the end, printing each frame. Resolves with the daemon's stream error, if any. */
async function printStream(ctx: CliContext, res: IncomingMessage, onFrame: (f: Frame) => Promise<void>): Promise<string | null> {
  const decoder = new FrameDecoder();
  let streamError: string | null = null;
  // Frames are handled in order: the next chunk waits for the lookups of the previous one.
  for await (const chunk of res as AsyncIterable<Buffer>) {
    for (const f of decoder.push(chunk)) {
      if (f.stream === SYSTEM_ERR) {
        streamError = f.payload.toString('utf8');
        continue;
      }
      await onFrame(f);
    }
  }
  if (decoder.leftover > 0) ctx.io.err(`warning: the log stream ended in the middle of a frame (${decoder.leftover} bytes)\n`);
  return streamError;
}

export async function runServiceLogs(ctx: CliContext, client: ApiClient, ref: string, o: LogsOptions): Promise<void> {
  let path: string;
  let tty: boolean;
  let padding: number;
  try {
    const s = await client.get<ServiceLike>(`/services/${encodeURIComponent(ref)}`, { insertDefaults: 'false' });
    path = `/services/${encodeURIComponent(s.ID)}/logs`;
    tty = s.Spec.TaskTemplate?.ContainerSpec?.TTY === true;
    padding = digits(s.Spec.Mode?.Replicated?.Replicas ?? 1);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    let t: TaskLike;
    try {
      t = await client.get<TaskLike>(`/tasks/${encodeURIComponent(ref)}`);
    } catch (err2) {
      if (isNotFound(err2)) throw new CliError('ERR_USAGE', `no such task or service: ${ref}`);
      throw err2;
    }
    path = `/tasks/${encodeURIComponent(t.ID)}/logs`;
    tty = t.Spec?.ContainerSpec?.TTY === true;
    padding = digits(t.Slot);
  }
  if (tty && !o.raw) throw new CliError('ERR_USAGE', 'tty service logs only supported with --raw');
  const query: Record<string, string> = { ...(o.raw ? {} : { details: '1' }), stderr: '1', stdout: '1', tail: o.tail };
  if (o.follow) query['follow'] = '1';
  if (o.since !== undefined) query['since'] = sinceParam(o.since, Date.now());
  if (o.timestamps) query['timestamps'] = '1';
  const res = await client.stream('GET', path, { query });
  // A followed stream may stay quiet for long: the client's idle timeout must not cut it.
  if (o.follow) res.socket?.setTimeout(0);
  if (tty) {
    for await (const chunk of res as AsyncIterable<Buffer>) ctx.io.out(chunk.toString('utf8'));
    return;
  }
  const resolver = apiResolver(client, o.noResolve);
  const labels = new Map<string, string>();
  const err = await printStream(ctx, res, async (f) => {
    const line = o.raw ? f.payload.toString('utf8') : await formatLine(resolver, f.payload, padding, o, labels);
    if (f.stream === STDERR) ctx.io.err(line);
    else ctx.io.out(line);
  });
  if (err !== null) throw new CliError('ERR_DAEMON_RESPONSE', `error from daemon in stream: ${err}`);
}

/** `--since`: a duration before now (`10m`, `1h30m`, `45s`), Unix seconds, or an RFC 3339 time → Unix seconds. */
export function sinceParam(value: string, nowMs: number): string {
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  const dur = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(value);
  if (dur !== null && value !== '') {
    const ms = (Number(dur[1] ?? 0) * 3600 + Number(dur[2] ?? 0) * 60 + Number(dur[3] ?? 0)) * 1000;
    return ((nowMs - ms) / 1000).toFixed(9);
  }
  const t = Date.parse(value);
  if (!Number.isFinite(t)) throw new CliError('ERR_USAGE', `invalid value for --since: ${value} (a duration like 10m, a Unix time, or an RFC 3339 time)`);
  return (t / 1000).toFixed(9);
}

/** Registers `service logs` on the `service` command's parser. */
export function addServiceLogsCommand(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command(
    'logs <service>',
    'Fetch the logs of a service or task',
    (s) =>
      s
        .positional('service', { type: 'string', demandOption: true, describe: 'Service or task name or ID' })
        .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'Follow log output' })
        .option('tail', { alias: 'n', type: 'string', default: 'all', describe: 'Number of lines to show from the end of the logs' })
        .option('since', { type: 'string', describe: 'Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)' })
        .option('timestamps', { alias: 't', type: 'boolean', default: false, describe: 'Show timestamps' })
        .option('raw', { type: 'boolean', default: false, describe: 'Do not neatly format logs' })
        .option('no-trunc', { type: 'boolean', default: false, describe: 'Do not truncate output' })
        .option('no-task-ids', { type: 'boolean', default: false, describe: 'Do not include task IDs in output' })
        .option('no-resolve', { type: 'boolean', default: false, describe: 'Do not map IDs to Names in output' })
        .option('details', { type: 'boolean', default: false, describe: 'Show extra details provided to logs' }),
    async (argv) => {
      await runServiceLogs(ctx, ctx.client(argv), argv.service, {
        follow: argv.follow,
        tail: argv.tail,
        ...(argv.since !== undefined ? { since: argv.since } : {}),
        timestamps: argv.timestamps,
        raw: argv.raw,
        noTrunc: argv['no-trunc'],
        noTaskIds: argv['no-task-ids'],
        noResolve: argv['no-resolve'],
        details: argv.details,
      });
    },
  );
}
