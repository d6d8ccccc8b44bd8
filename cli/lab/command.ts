// `shoal lab ...`: the command-line face of lab.ts.
import type { Argv } from 'yargs';
import type { CliCommand, CliContext, GlobalArgs } from '../context.js';
import { formatTable } from '../format/table.js';
// lab.ts pulls in the image builder, the lab's system tools and more: loaded when a lab command
// runs, so that every other `shoal` command starts without it.
const lab = (): Promise<typeof import('./lab.js')> => import('./lab.js');
import { resolveHostName } from './naming.js';
import { isProcessAlive } from '../proc.js';
import { daemonRunning, labRoot, listLabNames, readState, type LabState } from './state.js';

interface LabArgs extends GlobalArgs {
  readonly name: string;
}

function rest(argv: Record<string, unknown>): string[] {
  const dashed = argv['--'];
  return Array.isArray(dashed) ? dashed.map(String) : [];
}

function hostsTable(state: LabState): string {
  const ids = state.swarm?.nodeIds ?? {};
  const withIds = Object.keys(ids).length > 0;
  const rows = state.hosts.map((h) => [
    h.name,
    h.role,
    h.address,
    daemonRunning(h) ? `running (pid ${h.daemon?.pid ?? '?'})` : 'stopped',
    ...(withIds ? [ids[h.name] ?? ''] : []),
    h.socket,
  ]);
  return formatTable(['HOST', 'ROLE', 'ADDRESS', 'SHOALD', ...(withIds ? ['NODE ID'] : []), 'SOCKET'], rows);
}

function upSummary(state: LabState): string {
  const m = state.hosts.filter((h) => h.role === 'manager');
  const first = state.hosts[0]?.name ?? `${state.name}-m1`;
  const nameFlag = state.name === 'lab' ? '' : ` --name ${state.name}`;
  const lines = [
    `lab "${state.name}" is up: ${m.length} manager host${m.length === 1 ? '' : 's'}, ${state.hosts.length - m.length} worker host${state.hosts.length - m.length === 1 ? '' : 's'} on bridge ${state.bridge} (${state.subnet})`,
    '',
    hostsTable(state).trimEnd(),
    '',
    `registry: ${state.registry.address ?? '?'} (busybox:latest seeded; every daemon's Docker Hub mirror, so "busybox" just works)`,
    `swarm:    ${state.swarm?.message ?? 'not formed'}`,
    '',
    'Try:',
    `  shoal lab exec${nameFlag} ${first} -- shoal info          # any command inside a host, its daemon as DOCKER_HOST`,
    `  eval "$(shoal lab env${nameFlag} ${first})"; docker version  # point your shell (and the docker CLI) at a host`,
    `  shoal lab exec${nameFlag} ${first} -- ping -c1 ${state.hosts[1]?.address ?? state.gateway}`,
    `  shoal lab partition${nameFlag} ${first} -- ${state.hosts.slice(1).map((h) => h.name).join(' ') || first}; shoal lab heal${nameFlag}`,
    `  shoal lab kill${nameFlag} ${first}; shoal lab start${nameFlag} ${first}`,
    `  shoal lab down${nameFlag}                                 # removes everything the lab made`,
  ];
  return `${lines.join('\n')}\n`;
}

function allLabsTable(root: string): string {
  const rows = listLabNames(root).map((name) => {
    let state: LabState | undefined;
    try {
      state = readState(`${root}/${name}`);
    } catch {
      state = undefined;
    }
    if (state === undefined) return [name, '?', '?', '?', 'no state (shoal lab down removes it)'];
    const running = state.hosts.filter(daemonRunning).length;
    const registry = state.registry.process !== undefined && isProcessAlive(state.registry.process.pid, state.registry.process.startTime || undefined);
    return [name, state.subnet, state.bridge, `${running}/${state.hosts.length}`, `${state.phase}${registry ? '' : ', registry down'}`];
  });
  return formatTable(['LAB', 'SUBNET', 'BRIDGE', 'DAEMONS UP', 'STATE'], rows);
}

function hostArg(y: Argv<LabArgs>): Argv<LabArgs & { host: string }> {
  return y.positional('host', { type: 'string', demandOption: true, describe: 'Lab host: NAME-m1 (or just m1)' }) as Argv<LabArgs & { host: string }>;
}

export function labCommandBuilder(ctx: CliContext, root: () => string): (y: Argv<GlobalArgs>) => Argv<LabArgs> {
  const out = (t: string): void => ctx.io.out(t.endsWith('\n') ? t : `${t}\n`);
  return (parser) =>
    parser
      .option('name', { type: 'string', default: 'lab', describe: 'Lab name (several labs can run at once)' })
      .command(
        'up',
        'Build a lab: hosts (network namespaces) with their own shoald, a bridge and a registry',
        (y) =>
          y
            .option('managers', { type: 'number', default: 3, describe: 'Manager hosts (NAME-m1...)' })
            .option('workers', { type: 'number', default: 2, describe: 'Worker hosts (NAME-w1...)' }),
        async (argv) => {
          const state = await (await lab()).labUp({ root: root(), name: argv.name, managers: argv.managers, workers: argv.workers, progress: (l) => ctx.io.err(`lab ${argv.name}: ${l}\n`) });
          out(upSummary(state));
        },
      )
      .command('down', 'Remove everything the lab made (also after a crash)', {}, async (argv) => {
        const removed = await (await lab()).labDown({ root: root(), name: String(argv['name']) });
        out(removed.length === 0 ? `lab "${argv.name}": nothing to remove` : `lab "${argv.name}" removed: ${removed.join(', ')}`);
      })
      .command(
        ['ls', 'list'],
        "List the lab's hosts (or every lab with --all)",
        (y) => y.option('all', { alias: 'a', type: 'boolean', default: false, describe: 'List every lab' }),
        async (argv) => {
          if (argv.all) {
            out(allLabsTable(root()));
            return;
          }
          const state = (await lab()).loadLab(root(), argv.name);
          out(`lab "${state.name}": ${state.phase}, bridge ${state.bridge} ${state.subnet}, registry ${state.registry.address ?? '?'}${state.partitions.length > 0 ? `, partitions: ${state.partitions.map(([a, b]) => `${a.join(' ')} | ${b.join(' ')}`).join('; ')}` : ''}\n${hostsTable(state)}`);
        },
      )
      .command(
        'exec <host> [cmd..]',
        "Run a command in a host's network namespace with DOCKER_HOST/SHOAL_HOST set to its daemon: lab exec HOST -- CMD...",
        (y) => hostArg(y).positional('cmd', { type: 'string', array: true, describe: 'The command (after --)' }),
        async (argv) => {
          const cmd = [...((argv['cmd'] as string[] | undefined) ?? []), ...rest(argv as Record<string, unknown>)];
          ctx.exitCode = await (await lab()).labExec((await lab()).loadLab(root(), argv.name), argv.host, cmd);
        },
      )
      .command('env <host>', "Print the exports that point a shell at a host's daemon", hostArg, async (argv) => {
        const state = (await lab()).loadLab(root(), argv.name);
        const host = resolveHostName(state.name, state.hosts, argv.host);
        const env = (await lab()).hostEnv(host);
        out(`${Object.entries(env).map(([k, v]) => `export ${k}=${v}`).join('\n')}\n# Run this command to configure your shell:\n# eval "$(shoal lab env${state.name === 'lab' ? '' : ` --name ${state.name}`} ${host.name})"`);
      })
      .command('kill <host>', "SIGKILL a host's daemon", hostArg, async (argv) => {
        out(await (await lab()).labKill((await lab()).loadLab(root(), argv.name), argv.host));
      })
      .command('start <host>', "Start a host's daemon again (after lab kill)", hostArg, async (argv) => {
        out(await (await lab()).labStart((await lab()).loadLab(root(), argv.name), argv.host));
      })
      .command(
        'partition <hosts..>',
        'Cut the network between two groups of hosts: lab partition HOST... -- HOST...',
        (y) => y.positional('hosts', { type: 'string', array: true, demandOption: true }),
        async (argv) => {
          out(await (await lab()).labPartition((await lab()).loadLab(root(), argv.name), (argv['hosts'] as string[]).map(String), rest(argv as Record<string, unknown>)));
        },
      )
      .command('heal', 'Remove every partition', {}, async (argv) => {
        out(await (await lab()).labHeal((await lab()).loadLab(root(), String(argv['name']))));
      })
      .demandCommand(1, 'lab needs a subcommand: up, down, ls, exec, env, kill, start, partition or heal') as Argv<LabArgs>;
}

export const labCommand: CliCommand = {
  register: (parser, ctx) =>
    // Root is checked by each operation, so that `shoal lab --help` works for anyone.
    parser.command('lab', 'A multi-host lab on this machine (one network namespace per host)', labCommandBuilder(ctx, () => labRoot(ctx.env))),
};
