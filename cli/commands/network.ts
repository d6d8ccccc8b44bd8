// `shoal network create|ls|inspect|rm`: as docker's, over the daemon's API (docker-api.md §2.21).
// Swarm networks only (overlay, scope swarm): `create` sends the body the docker CLI sends, the
// manager allocates the subnet (or checks `--subnet`/`--gateway`) and the VNI.
import type { Argv } from 'yargs';
import type { CliCommand, GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { labelsOf } from './config.js';
import { asArray, filtersQuery, printInspect, printList, type Column } from './common.js';

/** `GET /networks` rows (dockerd's NetworkResource), the fields the CLI shows. */
export interface NetworkResource {
  readonly Name: string;
  readonly Id: string;
  readonly Created?: string;
  readonly Scope: string;
  readonly Driver: string;
  readonly Internal?: boolean;
  readonly Attachable?: boolean;
  readonly Ingress?: boolean;
  readonly EnableIPv6?: boolean;
  readonly IPAM?: { readonly Config?: readonly { readonly Subnet?: string; readonly Gateway?: string }[] };
  readonly Labels?: Readonly<Record<string, string>>;
  readonly Options?: Readonly<Record<string, string>>;
}

function columns(noTrunc: boolean): readonly Column<NetworkResource>[] {
  return [
    { header: 'NETWORK ID', field: 'ID', value: (n) => (noTrunc ? n.Id : n.Id.slice(0, 12)) },
    { header: 'NAME', field: 'Name', value: (n) => n.Name },
    { header: 'DRIVER', field: 'Driver', value: (n) => n.Driver },
    { header: 'SCOPE', field: 'Scope', value: (n) => n.Scope },
  ];
}

/** `--opt k=v` (a bare `encrypted` is `encrypted=""`, as docker sends it). */
function optionsOf(list: unknown): Record<string, string> {
  return labelsOf(list);
}

/** The body `docker network create` posts (docker-api.md §2.21), from shoal's flags. */
export function createBody(argv: {
  readonly name: string;
  readonly driver?: string;
  readonly subnet?: unknown;
  readonly gateway?: unknown;
  readonly 'ip-range'?: unknown;
  readonly attachable?: boolean;
  readonly internal?: boolean;
  readonly ingress?: boolean;
  readonly opt?: unknown;
  readonly label?: unknown;
}): Record<string, unknown> {
  const subnets = asArray(argv.subnet);
  const gateways = asArray(argv.gateway);
  const ranges = asArray(argv['ip-range']);
  if (gateways.length > subnets.length) throw new CliError('ERR_USAGE', 'every --gateway needs a --subnet (give them in pairs)');
  if (subnets.length > 1) throw new CliError('ERR_USAGE', 'one --subnet per overlay network (several subnets per network are not supported)');
  const config = subnets.map((s, i) => ({ Subnet: s, ...(gateways[i] !== undefined ? { Gateway: gateways[i] } : {}), ...(ranges[i] !== undefined ? { IPRange: ranges[i] } : {}) }));
  return {
    Name: argv.name,
    Driver: argv.driver ?? 'overlay',
    Scope: '',
    IPAM: { Driver: 'default', Options: {}, Config: config },
    Internal: argv.internal === true,
    Attachable: argv.attachable === true,
    Ingress: argv.ingress === true,
    ConfigOnly: false,
    ConfigFrom: null,
    Options: optionsOf(argv.opt),
    Labels: labelsOf(argv.label),
  };
}

export const networkCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command('network', 'Manage networks', (y: Argv<GlobalArgs>) =>
      y
        .command(
          'create <name>',
          'Create a network',
          (s) =>
            s
              .positional('name', { type: 'string', demandOption: true })
              .option('driver', { alias: 'd', type: 'string', default: 'overlay', describe: 'Driver to manage the Network (overlay)' })
              .option('subnet', { type: 'string', describe: 'Subnet in CIDR format that represents a network segment' })
              .option('gateway', { type: 'string', describe: 'IPv4 Gateway for the master subnet' })
              .option('ip-range', { type: 'string', describe: 'Allocate container ip from a sub-range' })
              .option('attachable', { type: 'boolean', default: false, describe: 'Enable manual container attachment' })
              .option('internal', { type: 'boolean', default: false, describe: 'Restrict external access to the network' })
              .option('ingress', { type: 'boolean', default: false, describe: 'Create swarm routing-mesh network' })
              .option('opt', { alias: 'o', type: 'string', describe: 'Set driver specific options' })
              .option('label', { type: 'string', describe: 'Set metadata on a network' }),
          async (argv) => {
            // Repeatable flags are not yargs arrays (an array would swallow the network's name: `--opt encrypted net`).
            const res = await ctx.client(argv).post<{ Id: string }>('/networks/create', createBody(argv));
            ctx.io.out(`${res.Id}\n`);
          },
        )
        .command(
          ['ls', 'list'],
          'List networks',
          (s) =>
            s
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display network IDs' })
              .option('no-trunc', { type: 'boolean', default: false, describe: 'Do not truncate the output' })
              .option('format', { type: 'string', describe: 'Pretty-print networks using a Go-style template ({{.ID}}, {{.Name}}, {{.Driver}}, {{.Scope}})' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Provide filter values (e.g. driver=overlay, name=front, label=a=b)' }),
          async (argv) => {
            const list = (await ctx.client(argv).get<NetworkResource[]>('/networks', filtersQuery(argv.filter))).slice();
            list.sort((a, b) => a.Name.localeCompare(b.Name));
            printList(ctx, list, columns(argv['no-trunc']), { quiet: argv.quiet, ...(argv.format !== undefined ? { format: argv.format } : {}), id: (n) => (argv['no-trunc'] ? n.Id : n.Id.slice(0, 12)) });
          },
        )
        .command(
          'inspect <networks..>',
          'Display detailed information on one or more networks',
          (s) => s.positional('networks', { type: 'string', array: true, demandOption: true }).option('format', { alias: 'f', type: 'string', describe: 'Format output using a Go-style template' }),
          async (argv) => {
            const c = ctx.client(argv);
            const out: NetworkResource[] = [];
            for (const ref of asArray(argv.networks)) out.push(await c.get<NetworkResource>(`/networks/${encodeURIComponent(ref)}`));
            printInspect(ctx, out, argv.format);
          },
        )
        .command(
          ['rm <networks..>', 'remove <networks..>'],
          'Remove one or more networks',
          (s) => s.positional('networks', { type: 'string', array: true, demandOption: true }).option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Do not ask to remove the ingress network' }),
          async (argv) => {
            const c = ctx.client(argv);
            const errors: string[] = [];
            for (const ref of asArray(argv.networks)) {
              try {
                const n = await c.get<NetworkResource>(`/networks/${encodeURIComponent(ref)}`);
                if (n.Ingress === true && !argv.force) {
                  errors.push(`${ref} is the routing-mesh (ingress) network: services publishing ports in ingress mode need it; run again with --force to remove it`);
                  continue;
                }
                await c.delete(`/networks/${encodeURIComponent(ref)}`);
                ctx.io.out(`${ref}\n`);
              } catch (err) {
                errors.push((err as Error).message);
              }
            }
            // As docker: every network is tried; the failures are reported together.
            if (errors.length > 0) throw new CliError('ERR_DAEMON_RESPONSE', errors.join('\n'));
          },
        )
        .demandCommand(1, 'shoal network needs a subcommand (see shoal network --help)'),
    ),
};
