// `shoal swarm init|join|join-token|leave|update|unlock|unlock-key`: as docker's, over the daemon's API.
import type { Argv } from 'yargs';
import type { CliCommand, CliContext, GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { swarmCa } from './swarm-ca.js';

interface SwarmObject {
  readonly Version: { readonly Index: number };
  readonly Spec: Record<string, unknown> & { readonly EncryptionConfig?: { readonly AutoLockManagers?: boolean } };
  readonly JoinTokens: { readonly Worker: string; readonly Manager: string };
}
interface InfoObject {
  readonly Swarm: { readonly NodeID: string; readonly ControlAvailable: boolean; readonly LocalNodeState: string };
}
interface NodeObject {
  readonly ManagerStatus?: { readonly Addr: string };
}

async function managerAddr(ctx: CliContext, argv: GlobalArgs): Promise<string> {
  const c = ctx.client(argv);
  const info = await c.get<InfoObject>('/info');
  const node = await c.get<NodeObject>(`/nodes/${info.Swarm.NodeID}`);
  return node.ManagerStatus?.Addr ?? '';
}

function joinCommand(role: string, token: string, addr: string): string {
  return `To add a ${role} to this swarm, run the following command:\n\n    shoal swarm join --token ${token} ${addr}\n\n`;
}

async function rotate(ctx: CliContext, argv: GlobalArgs, what: 'rotateWorkerToken' | 'rotateManagerToken' | 'rotateManagerUnlockKey'): Promise<void> {
  const c = ctx.client(argv);
  const swarm = await c.get<SwarmObject>('/swarm');
  const query = { rotateWorkerToken: false, rotateManagerToken: false, rotateManagerUnlockKey: false, [what]: true, version: swarm.Version.Index };
  await c.post('/swarm/update', swarm.Spec, query);
}

/** Go's time.ParseDuration forms docker's duration flags take (`2160h`, `5s`, `1h30m`, `500ms`). */
export function parseGoDurationNs(text: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * units[m[2]!]!;
    at = re.lastIndex;
  }
  if (text === '0') return 0;
  if (text === '' || at !== text.length) throw new CliError('ERR_USAGE', `invalid duration "${text}" (e.g. 2160h0m0s, 5s)`);
  return Math.round(total);
}

/** `swarm unlock` reads the key as docker does: the first line of stdin (a prompt on a terminal). */
async function readUnlockKey(ctx: CliContext): Promise<string> {
  if (process.stdin.isTTY) ctx.io.out('Enter unlock key: ');
  let text = '';
  for await (const chunk of process.stdin) {
    text += (chunk as Buffer).toString('utf8');
    if (text.includes('\n')) break;
  }
  return (text.split('\n')[0] ?? '').trim();
}

function printUnlockKey(ctx: CliContext, key: string, quiet: boolean): void {
  if (key === '') throw new CliError('ERR_DAEMON_RESPONSE', 'no unlock key is set');
  if (quiet) {
    ctx.io.out(`${key}\n`);
    return;
  }
  ctx.io.out(
    `To unlock a swarm manager after it restarts, run the \`shoal swarm unlock\`\ncommand and provide the following key:\n\n    ${key}\n\nPlease remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n`,
  );
}

export const swarmCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command('swarm', 'Manage Swarm', (y: Argv<GlobalArgs>) =>
      y
        .command(
          'init',
          'Initialize a swarm',
          (s) =>
            s
              .option('advertise-addr', { type: 'string', describe: 'Advertised address (format: <ip|interface>[:port])' })
              .option('listen-addr', { type: 'string', default: '0.0.0.0:2377', describe: 'Listen address (format: <ip|interface>[:port])' })
              .option('force-new-cluster', { type: 'boolean', default: false, describe: 'Force create a new cluster from current state' })
              .option('autolock', { type: 'boolean', default: false, describe: 'Enable manager autolocking (requiring an unlock key to start a stopped manager)' })
              .option('default-addr-pool', { type: 'string', array: true, describe: 'Default address pool in CIDR format (default 10.0.0.0/8)' })
              .option('default-addr-pool-mask-length', { type: 'number', default: 24, describe: 'Default address pool subnet mask length' }),
          async (argv) => {
            const c = ctx.client(argv);
            const nodeId = await c.post<string>('/swarm/init', {
              DefaultAddrPool: (argv['default-addr-pool'] ?? []).map(String),
              SubnetSize: argv['default-addr-pool-mask-length'],
              ListenAddr: argv['listen-addr'],
              AdvertiseAddr: argv['advertise-addr'] ?? '',
              ForceNewCluster: argv['force-new-cluster'],
              Spec: { EncryptionConfig: { AutoLockManagers: argv.autolock } },
              AutoLockManagers: argv.autolock,
            });
            ctx.io.out(`Swarm initialized: current node (${nodeId}) is now a manager.\n\n`);
            const node = await c.get<NodeObject>(`/nodes/${nodeId}`);
            const swarm = await c.get<SwarmObject>('/swarm');
            if (node.ManagerStatus?.Addr !== undefined) ctx.io.out(joinCommand('worker', swarm.JoinTokens.Worker, node.ManagerStatus.Addr));
            ctx.io.out("To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n");
            if (argv.autolock) printUnlockKey(ctx, (await c.get<{ UnlockKey: string }>('/swarm/unlockkey')).UnlockKey, false);
          },
        )
        .command(
          'join <host>',
          'Join a swarm as a node and/or manager',
          (s) =>
            s
              .positional('host', { type: 'string', demandOption: true, describe: 'A manager of the swarm (host:port)' })
              .option('token', { type: 'string', demandOption: true, describe: 'Token for entry into the swarm' })
              .option('advertise-addr', { type: 'string', describe: 'Advertised address (format: <ip|interface>[:port])' })
              .option('listen-addr', { type: 'string', default: '0.0.0.0:2377', describe: 'Listen address (format: <ip|interface>[:port])' }),
          async (argv) => {
            const c = ctx.client(argv);
            await c.post('/swarm/join', { ListenAddr: argv['listen-addr'], AdvertiseAddr: argv['advertise-addr'] ?? '', RemoteAddrs: [argv.host], JoinToken: argv.token });
            const info = await c.get<InfoObject>('/info');
            ctx.io.out(info.Swarm.ControlAvailable ? 'This node joined a swarm as a manager.\n' : 'This node joined a swarm as a worker.\n');
          },
        )
        .command(
          'join-token <role>',
          'Manage join tokens',
          (s) =>
            s
              .positional('role', { type: 'string', choices: ['worker', 'manager'], demandOption: true })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display token' })
              .option('rotate', { type: 'boolean', default: false, describe: 'Rotate join token' }),
          async (argv) => {
            const worker = argv.role === 'worker';
            if (argv.rotate) await rotate(ctx, argv, worker ? 'rotateWorkerToken' : 'rotateManagerToken');
            const c = ctx.client(argv);
            const swarm = await c.get<SwarmObject>('/swarm');
            const token = worker ? swarm.JoinTokens.Worker : swarm.JoinTokens.Manager;
            if (argv.quiet) {
              ctx.io.out(`${token}\n`);
              return;
            }
            if (argv.rotate) ctx.io.out(`Successfully rotated ${argv.role} join token.\n\n`);
            ctx.io.out(joinCommand(argv.role, token, await managerAddr(ctx, argv)));
          },
        )
        .command(
          'leave',
          'Leave the swarm',
          (s) => s.option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Force this node to leave the swarm, ignoring warnings' }),
          async (argv) => {
            await ctx.client(argv).post('/swarm/leave', undefined, argv.force ? { force: 1 } : undefined);
            ctx.io.out('Node left the swarm.\n');
          },
        )
        .command(
          'ca',
          'Display and rotate the root CA',
          (s) =>
            s
              .option('rotate', { type: 'boolean', default: false, describe: 'Rotate the swarm CA - if no certificate or key are provided, new ones will be generated' })
              .option('cert-expiry', { type: 'string', describe: 'Validity period for node certificates (ns|us|ms|s|m|h)' })
              .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'Exit immediately instead of waiting for the root rotation to converge' })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Suppress progress output' }),
          async (argv) => swarmCa(ctx, argv, parseGoDurationNs),
        )
        .command(
          'update',
          'Update the swarm',
          (s) =>
            s
              .option('autolock', { type: 'boolean', describe: 'Change manager autolocking setting (true|false)' })
              .option('snapshot-interval', { type: 'number', describe: 'Number of log entries between Raft snapshots' })
              .option('max-snapshots', { type: 'number', describe: 'Number of additional Raft snapshots to retain' })
              .option('task-history-limit', { type: 'number', describe: 'Task history retention limit' })
              .option('cert-expiry', { type: 'string', describe: 'Validity period for node certificates (ns|us|ms|s|m|h)' })
              .option('dispatcher-heartbeat', { type: 'string', describe: 'Dispatcher heartbeat period (ns|us|ms|s|m|h)' }),
          async (argv) => {
            const c = ctx.client(argv);
            const swarm = await c.get<SwarmObject>('/swarm');
            const spec: Record<string, unknown> = { ...swarm.Spec };
            const sub = (k: string): Record<string, unknown> => ({ ...((spec[k] as Record<string, unknown> | undefined) ?? {}) });
            const count = (flag: string, v: number | undefined): number | undefined => {
              if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new CliError('ERR_USAGE', `invalid argument "${v}" for "--${flag}" flag: must be a non-negative integer`);
              return v;
            };
            const prevAutolock = swarm.Spec.EncryptionConfig?.AutoLockManagers === true;
            if (argv.autolock !== undefined) spec['EncryptionConfig'] = { ...sub('EncryptionConfig'), AutoLockManagers: argv.autolock };
            const interval = count('snapshot-interval', argv['snapshot-interval']);
            if (interval !== undefined) spec['Raft'] = { ...sub('Raft'), SnapshotInterval: interval };
            const keep = count('max-snapshots', argv['max-snapshots']);
            if (keep !== undefined) spec['Raft'] = { ...sub('Raft'), KeepOldSnapshots: keep };
            const history = count('task-history-limit', argv['task-history-limit']);
            if (history !== undefined) spec['Orchestration'] = { ...sub('Orchestration'), TaskHistoryRetentionLimit: history };
            if (argv['cert-expiry'] !== undefined) spec['CAConfig'] = { ...sub('CAConfig'), NodeCertExpiry: parseGoDurationNs(argv['cert-expiry']) };
            if (argv['dispatcher-heartbeat'] !== undefined) spec['Dispatcher'] = { ...sub('Dispatcher'), HeartbeatPeriod: parseGoDurationNs(argv['dispatcher-heartbeat']) };
            await c.post('/swarm/update', spec, { rotateWorkerToken: false, rotateManagerToken: false, rotateManagerUnlockKey: false, version: swarm.Version.Index });
            ctx.io.out('Swarm updated.\n');
            if (argv.autolock === true && !prevAutolock) printUnlockKey(ctx, (await c.get<{ UnlockKey: string }>('/swarm/unlockkey')).UnlockKey, false);
          },
        )
        .command(
          'unlock',
          'Unlock swarm',
          (s) => s,
          async (argv) => {
            const c = ctx.client(argv);
            const info = await c.get<InfoObject>('/info');
            const state = info.Swarm.LocalNodeState;
            if (state === 'inactive') throw new CliError('ERR_USAGE', 'Error: This node is not part of a swarm');
            if (state !== 'locked') throw new CliError('ERR_USAGE', 'Error: swarm is not locked');
            const key = await readUnlockKey(ctx);
            await c.post('/swarm/unlock', { UnlockKey: key });
          },
        )
        .command(
          'unlock-key',
          'Manage the unlock key',
          (s) =>
            s
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display the key' })
              .option('rotate', { type: 'boolean', default: false, describe: 'Rotate unlock key' }),
          async (argv) => {
            const c = ctx.client(argv);
            if (argv.rotate) {
              const swarm = await c.get<SwarmObject>('/swarm');
              if (swarm.Spec.EncryptionConfig?.AutoLockManagers !== true) throw new CliError('ERR_USAGE', 'cannot rotate because autolock is not turned on');
              await rotate(ctx, argv, 'rotateManagerUnlockKey');
              if (!argv.quiet) ctx.io.out('Successfully rotated manager unlock key.\n\n');
            }
            printUnlockKey(ctx, (await c.get<{ UnlockKey: string }>('/swarm/unlockkey')).UnlockKey, argv.quiet);
          },
        )
        .demandCommand(1, 'shoal swarm needs a subcommand (see shoal swarm --help)'),
    ),
};
