// shoald's command line. Flags mirror dockerd's where they mean the same thing.
import { hostname } from 'node:os';
import yargs from 'yargs';

export const DEFAULT_DATA_ROOT = '/var/lib/shoal';
export const DEFAULT_SOCKET = '/run/shoal/shoal.sock';
export const DEFAULT_LISTEN_ADDR = '0.0.0.0:2377';
export const SWARM_PORT = 2377;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DaemonOptions {
  readonly dataRoot: string;
  readonly socket: string;
  /** Where the cluster (gRPC) port listens, `host:port`. */
  readonly listenAddr: string;
  /** The address other nodes reach this one at (`ip` or `ip:port`); empty = decided at swarm init/join. */
  readonly advertiseAddr: string;
  /** Registry mirrors for Docker Hub images (http(s) URLs), tried in order. */
  readonly registryMirrors: readonly string[];
  /** Registries reached over plain HTTP (`host:port`). */
  readonly insecureRegistries: readonly string[];
  readonly logLevel: LogLevel;
  /** The node's hostname as the cluster sees it (lab hosts share one UTS namespace). */
  readonly hostname: string;
}

export class DaemonUsageError extends Error {
  override readonly name = 'DaemonUsageError';
  readonly code = 'ERR_DAEMON_USAGE';
}

/** Adds the default swarm port when `addr` has none (`10.0.0.1` → `10.0.0.1:2377`). */
export function withDefaultPort(addr: string, port = SWARM_PORT): string {
  if (/^\[.*\]:\d+$/.test(addr) || /^[^:]+:\d+$/.test(addr)) return addr;
  if (addr.includes(':') && !addr.startsWith('[')) return `[${addr}]:${port}`; // bare IPv6
  return `${addr}:${port}`;
}

function checkMirror(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DaemonUsageError(`--registry-mirror ${url}: not a URL (want e.g. http://10.0.0.1:5000)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new DaemonUsageError(`--registry-mirror ${url}: must be an http:// or https:// URL`);
  return url.replace(/\/+$/, '');
}

function strings(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String).filter((s) => s !== '');
}

/** Parses shoald's arguments; `--help`/`--version` print and resolve to undefined. */
export async function parseDaemonArgs(argv: readonly string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<DaemonOptions | undefined> {
  let printed = false;
  const parser = yargs([...argv])
    .scriptName('shoald')
    .usage('Usage: shoald [OPTIONS]\n\nThe Shoal daemon: one per host. Serves the Docker Engine API (swarm subset) on a unix socket.')
    .option('data-root', { type: 'string', default: DEFAULT_DATA_ROOT, describe: 'Directory for the node state (one daemon per data root)' })
    .option('socket', { type: 'string', default: DEFAULT_SOCKET, describe: 'Unix socket of the local API' })
    .option('listen-addr', { type: 'string', default: DEFAULT_LISTEN_ADDR, describe: 'Cluster listen address (host:port)' })
    .option('advertise-addr', { type: 'string', default: '', describe: 'Address advertised to other nodes' })
    .option('registry-mirror', { type: 'string', array: true, describe: 'Registry mirror URL for Docker Hub images (repeatable)' })
    .option('insecure-registry', { type: 'string', array: true, describe: 'Registry reached over plain HTTP, host:port (repeatable)' })
    .option('log-level', { type: 'string', choices: LOG_LEVELS, default: 'info', describe: 'Log level' })
    .option('hostname', { type: 'string', default: hostname(), describe: 'Hostname the node reports to the cluster' })
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw new DaemonUsageError(msg ?? err?.message ?? 'invalid arguments');
    });
  const args = await parser.parseAsync([...argv], {}, (err, _argv, output) => {
    if (err == null && output !== '') {
      printed = true;
      out(`${output}\n`);
    }
  });
  if (printed || args['help'] === true) return undefined;
  const dataRoot = String(args['data-root']);
  const socket = String(args['socket']);
  if (!dataRoot.startsWith('/')) throw new DaemonUsageError(`--data-root must be an absolute path: ${dataRoot}`);
  if (!socket.startsWith('/')) throw new DaemonUsageError(`--socket must be an absolute path: ${socket}`);
  if (Buffer.byteLength(socket) > 107) throw new DaemonUsageError(`--socket path is too long for a unix socket (max 107 bytes): ${socket}`);
  const hostnameValue = String(args['hostname']).trim();
  if (hostnameValue === '') throw new DaemonUsageError('--hostname must not be empty');
  return {
    dataRoot,
    socket,
    listenAddr: withDefaultPort(String(args['listen-addr'])),
    advertiseAddr: String(args['advertise-addr']),
    registryMirrors: strings(args['registry-mirror']).map(checkMirror),
    insecureRegistries: strings(args['insecure-registry']),
    logLevel: args['log-level'] as LogLevel,
    hostname: hostnameValue,
  };
}
