// `shoal node ls|inspect|rm|update|promote|demote|ps`: as docker's, over the daemon's API.
import type { Argv } from 'yargs';
import type { CliCommand, CliContext, GlobalArgs } from '../context.js';
import { mergedFilters, printTasks } from '../stack/ps.js';
import { asArray, filtersQuery, printInspect, printList, titleCase, type Column } from './common.js';

interface NodeObject {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly Spec: Record<string, unknown> & { readonly Availability?: string };
  readonly Description?: { readonly Hostname?: string; readonly Engine?: { readonly EngineVersion?: string } };
  readonly Status: { readonly State: string };
  readonly ManagerStatus?: { readonly Leader?: boolean; readonly Reachability?: string };
}

async function selfId(ctx: CliContext, argv: GlobalArgs): Promise<string> {
  return (await ctx.client(argv).get<{ Swarm: { NodeID: string } }>('/info')).Swarm.NodeID;
}

async function resolveRef(ctx: CliContext, argv: GlobalArgs, ref: string): Promise<string> {
  return ref === 'self' ? selfId(ctx, argv) : ref;
}

/** `node promote|demote`: the node's spec with the new role, at the version read (as docker does). */
async function setRole(ctx: CliContext, argv: GlobalArgs, refs: readonly string[], role: 'manager' | 'worker'): Promise<void> {
  const c = ctx.client(argv);
  for (const ref of refs) {
    const node = await c.get<NodeObject>(`/nodes/${encodeURIComponent(await resolveRef(ctx, argv, ref))}`);
    if (node.Spec['Role'] === role) {
      ctx.io.out(`Node ${ref} is already a ${role} in the swarm.\n`);
      continue;
    }
    await c.post(`/nodes/${node.ID}/update`, { ...node.Spec, Role: role }, { version: node.Version.Index });
    ctx.io.out(role === 'manager' ? `Node ${ref} promoted to a manager in the swarm.\n` : `Manager ${ref} demoted in the swarm.\n`);
  }
}

function managerStatus(n: NodeObject): string {
  if (n.ManagerStatus === undefined) return '';
  if (n.ManagerStatus.Leader === true) return 'Leader';
  return titleCase(n.ManagerStatus.Reachability ?? '');
}

export const nodeCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command('node', 'Manage Swarm nodes', (y: Argv<GlobalArgs>) =>
      y
        .command(
          ['ls', 'list'],
          'List nodes in the swarm',
          (s) =>
            s
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Hostname}}, {{.ManagerStatus}}, …)' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided' }),
          async (argv) => {
            const c = ctx.client(argv);
            const nodes = (await c.get<NodeObject[]>('/nodes', filtersQuery(argv.filter))).slice();
            nodes.sort((a, b) => (a.Description?.Hostname ?? '').localeCompare(b.Description?.Hostname ?? ''));
            const self = argv.quiet || nodes.length === 0 ? '' : await selfId(ctx, argv);
            const columns: Column<NodeObject>[] = [
              { header: 'ID', field: 'ID', value: (n) => (n.ID === self && argv.format === undefined ? `${n.ID} *` : n.ID) },
              { header: 'HOSTNAME', field: 'Hostname', value: (n) => n.Description?.Hostname ?? '' },
              { header: 'STATUS', field: 'Status', value: (n) => titleCase(n.Status.State) },
              { header: 'AVAILABILITY', field: 'Availability', value: (n) => titleCase(String(n.Spec.Availability ?? '')) },
              { header: 'MANAGER STATUS', field: 'ManagerStatus', value: managerStatus },
              { header: 'ENGINE VERSION', field: 'EngineVersion', value: (n) => n.Description?.Engine?.EngineVersion ?? '' },
            ];
            printList(ctx, nodes, columns, { quiet: argv.quiet, ...(argv.format !== undefined ? { format: argv.format } : {}), id: (n) => n.ID });
          },
        )
        .command(
          'inspect <nodes..>',
          'Display detailed information on one or more nodes',
          (s) => s.positional('nodes', { type: 'string', array: true, demandOption: true }).option('format', { alias: 'f', type: 'string', describe: 'Format output using a Go-style template' }),
          async (argv) => {
            const c = ctx.client(argv);
            const out: unknown[] = [];
            for (const ref of asArray(argv.nodes)) out.push(await c.get(`/nodes/${encodeURIComponent(await resolveRef(ctx, argv, ref))}`));
            printInspect(ctx, out, argv.format);
          },
        )
        .command(
          ['rm <nodes..>', 'remove <nodes..>'],
          'Remove one or more nodes from the swarm',
          (s) => s.positional('nodes', { type: 'string', array: true, demandOption: true }).option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Force remove a node from the swarm' }),
          async (argv) => {
            const c = ctx.client(argv);
            for (const ref of asArray(argv.nodes)) {
              await c.delete(`/nodes/${encodeURIComponent(ref)}`, argv.force ? { force: 1 } : undefined);
              ctx.io.out(`${ref}\n`);
            }
          },
        )
        .command(
          'update <node>',
          'Update a node',
          (s) =>
            s
              .positional('node', { type: 'string', demandOption: true })
              .option('availability', { type: 'string', choices: ['active', 'pause', 'drain'], describe: 'Availability of the node' })
              .option('role', { type: 'string', choices: ['worker', 'manager'], describe: 'Role of the node' })
              .option('label-add', { type: 'string', array: true, describe: 'Add or update a node label (key=value)' })
              .option('label-rm', { type: 'string', array: true, describe: 'Remove a node label if exists' }),
          async (argv) => {
            const c = ctx.client(argv);
            const ref = await resolveRef(ctx, argv, argv.node);
            const node = await c.get<NodeObject>(`/nodes/${encodeURIComponent(ref)}`);
            const labels: Record<string, string> = { ...((node.Spec['Labels'] as Record<string, string> | undefined) ?? {}) };
            for (const l of asArray(argv['label-add'])) {
              const i = l.indexOf('=');
              labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
            }
            for (const l of asArray(argv['label-rm'])) delete labels[l];
            const spec = {
              ...node.Spec,
              Labels: labels,
              ...(argv.availability !== undefined ? { Availability: argv.availability } : {}),
              ...(argv.role !== undefined ? { Role: argv.role } : {}),
            };
            await c.post(`/nodes/${node.ID}/update`, spec, { version: node.Version.Index });
            ctx.io.out(`${argv.node}\n`);
          },
        )
        .command(
          'promote <nodes..>',
          'Promote one or more nodes to manager in the swarm',
          (s) => s.positional('nodes', { type: 'string', array: true, demandOption: true }),
          (argv) => setRole(ctx, argv, asArray(argv.nodes), 'manager'),
        )
        .command(
          'demote <nodes..>',
          'Demote one or more nodes from manager in the swarm',
          (s) => s.positional('nodes', { type: 'string', array: true, demandOption: true }),
          (argv) => setRole(ctx, argv, asArray(argv.nodes), 'worker'),
        )
        .command(
          'ps [nodes..]',
          'List tasks running on one or more nodes, defaults to current node',
          (s) =>
            s
              .positional('nodes', { type: 'string', array: true })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display task IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Name}}, {{.Node}}, {{.CurrentState}}, …)' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided (desired-state, id, name, service)' })
              .option('no-trunc', { type: 'boolean', default: false, describe: 'Do not truncate output' })
              .option('no-resolve', { type: 'boolean', default: false, describe: 'Do not map IDs to names' }),
          async (argv) => {
            const c = ctx.client(argv);
            const refs = asArray(argv.nodes);
            const ids: string[] = [];
            for (const ref of refs.length === 0 ? ['self'] : refs) ids.push((await c.get<NodeObject>(`/nodes/${encodeURIComponent(await resolveRef(ctx, argv, ref))}`)).ID);
            await printTasks(ctx, c, mergedFilters({ node: ids }, argv.filter), { quiet: argv.quiet, noTrunc: argv['no-trunc'], noResolve: argv['no-resolve'], format: argv.format });
          },
        )
        .demandCommand(1, 'shoal node needs a subcommand (see shoal node --help)'),
    ),
};
