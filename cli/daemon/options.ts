// shoald's command line. Flags mirror dockerd's where they mean the same thing. Parsed with
// node:util's parseArgs: the daemon keeps every module it loads for its whole life, and yargs (with
// cliui, y18n, string-width, ...) cost ~1.2 MiB of heap for a parse done once at start.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';

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

interface FlagDoc {
  readonly flag: string;
  readonly describe: string;
  readonly defaultValue?: string;
  readonly repeatable?: boolean;
  readonly choices?: readonly string[];
}

const FLAGS: readonly FlagDoc[] = [
  { flag: 'data-root', describe: 'Directory for the node state (one daemon per data root)', defaultValue: DEFAULT_DATA_ROOT },
  { flag: 'socket', describe: 'Unix socket of the local API', defaultValue: DEFAULT_SOCKET },
  { flag: 'listen-addr', describe: 'Cluster listen address (host:port)', defaultValue: DEFAULT_LISTEN_ADDR },
  { flag: 'advertise-addr', describe: 'Address advertised to other nodes' },
  { flag: 'registry-mirror', describe: 'Registry mirror URL for Docker Hub images', repeatable: true },
  { flag: 'insecure-registry', describe: 'Registry reached over plain HTTP, host:port', repeatable: true },
  { flag: 'log-level', describe: 'Log level', defaultValue: 'info', choices: LOG_LEVELS },
  { flag: 'hostname', describe: 'Hostname the node reports to the cluster', defaultValue: '(this host\'s name)' },
];

function usage(): string {
  const lines = FLAGS.map((f) => {
    const notes = [
      ...(f.repeatable === true ? ['repeatable'] : []),
      ...(f.choices !== undefined ? [`one of ${f.choices.join(', ')}`] : []),
      ...(f.defaultValue !== undefined ? [`default ${f.defaultValue}`] : []),
    ];
    return `  --${f.flag.padEnd(19)} ${f.describe}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
  });
  return [
    'Usage: shoald [OPTIONS]',
    '',
    'The Shoal daemon: one per host. Serves the Docker Engine API (swarm subset) on a unix socket.',
    '',
    'Options:',
    ...lines,
    `  --${'help'.padEnd(19)} Show this help`,
    '',
  ].join('\n');
}

/** Parses shoald's arguments; `--help` prints the usage and resolves to undefined. */
export async function parseDaemonArgs(argv: readonly string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<DaemonOptions | undefined> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'data-root': { type: 'string', default: DEFAULT_DATA_ROOT },
        socket: { type: 'string', default: DEFAULT_SOCKET },
        'listen-addr': { type: 'string', default: DEFAULT_LISTEN_ADDR },
        'advertise-addr': { type: 'string', default: '' },
        'registry-mirror': { type: 'string', multiple: true, default: [] },
        'insecure-registry': { type: 'string', multiple: true, default: [] },
        'log-level': { type: 'string', default: 'info' },
        hostname: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    // parseArgs' own messages name the flag ("Unknown option '--bogus'", "Option '--socket <value>' argument missing").
    throw new DaemonUsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) {
    out(usage());
    return undefined;
  }
  const logLevel = values['log-level'];
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new DaemonUsageError(`--log-level ${logLevel}: want one of ${LOG_LEVELS.join(', ')}`);
  const dataRoot = values['data-root'];
  const socket = values.socket;
  if (!dataRoot.startsWith('/')) throw new DaemonUsageError(`--data-root must be an absolute path: ${dataRoot}`);
  if (!socket.startsWith('/')) throw new DaemonUsageError(`--socket must be an absolute path: ${socket}`);
  if (Buffer.byteLength(socket) > 107) throw new DaemonUsageError(`--socket path is too long for a unix socket (max 107 bytes): ${socket}`);
  const hostnameValue = (values.hostname ?? hostname()).trim();
  if (hostnameValue === '') throw new DaemonUsageError('--hostname must not be empty');
  return {
    dataRoot,
    socket,
    listenAddr: withDefaultPort(values['listen-addr']),
    advertiseAddr: values['advertise-addr'],
    registryMirrors: values['registry-mirror'].filter((u) => u !== '').map(checkMirror),
    insecureRegistries: values['insecure-registry'].filter((r) => r !== ''),
    logLevel: logLevel as LogLevel,
    hostname: hostnameValue,
  };
}
