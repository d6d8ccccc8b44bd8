// `shoal service create|ls|inspect|rm|scale`: as docker's, over the daemon's API. create and scale
// return once the change is committed (docker's `-d` behaviour); convergence progress comes later.
import type { Argv } from 'yargs';
import type { CliCommand, GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { asArray, filtersQuery, printInspect, printList, type Column } from './common.js';

interface ServiceObject {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly Spec: Record<string, unknown> & {
    readonly Name: string;
    readonly Mode?: { readonly Replicated?: { readonly Replicas?: number }; readonly Global?: unknown; readonly ReplicatedJob?: unknown; readonly GlobalJob?: unknown };
    readonly TaskTemplate?: { readonly ContainerSpec?: { readonly Image?: string }; readonly Placement?: { readonly MaxReplicas?: number } };
  };
  readonly Endpoint?: { readonly Ports?: readonly { readonly PublishMode?: string; readonly PublishedPort?: number; readonly TargetPort?: number; readonly Protocol?: string }[] };
  readonly ServiceStatus?: { readonly RunningTasks: number; readonly DesiredTasks: number; readonly CompletedTasks?: number };
}

function modeOf(s: ServiceObject): string {
  const m = s.Spec.Mode ?? {};
  if (m.Global !== undefined) return 'global';
  if (m.ReplicatedJob !== undefined) return 'replicated job';
  if (m.GlobalJob !== undefined) return 'global job';
  return 'replicated';
}

function replicasOf(s: ServiceObject): string {
  const st = s.ServiceStatus;
  if (st === undefined) return '';
  const max = s.Spec.TaskTemplate?.Placement?.MaxReplicas;
  return `${st.RunningTasks}/${st.DesiredTasks}${max !== undefined && max > 0 ? ` (max ${max} per node)` : ''}`;
}

const stripDigest = (image: string): string => image.split('@')[0] ?? image;

function portsOf(s: ServiceObject): string {
  return (s.Endpoint?.Ports ?? [])
    .filter((p) => p.PublishMode === 'ingress')
    .map((p) => `*:${p.PublishedPort ?? ''}->${p.TargetPort ?? ''}/${p.Protocol ?? 'tcp'}`)
    .join(', ');
}

function keyValues(list: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of asArray(list)) {
    const i = l.indexOf('=');
    out[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  return out;
}

export const serviceCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command('service', 'Manage Swarm services', (y: Argv<GlobalArgs>) =>
      y
        .command(
          'create <image> [args..]',
          'Create a new service',
          (s) =>
            s
              .positional('image', { type: 'string', demandOption: true })
              .positional('args', { type: 'string', array: true })
              .option('name', { type: 'string', describe: 'Service name' })
              .option('replicas', { type: 'number', describe: 'Number of tasks' })
              .option('mode', { type: 'string', choices: ['replicated', 'global'], default: 'replicated', describe: 'Service mode' })
              .option('env', { alias: 'e', type: 'string', array: true, describe: 'Set environment variables' })
              .option('label', { alias: 'l', type: 'string', array: true, describe: 'Service labels' })
              .option('constraint', { type: 'string', array: true, describe: 'Placement constraints' })
              .option('detach', { alias: 'd', type: 'boolean', default: true, describe: 'Exit immediately (the only behaviour for now)' }),
          async (argv) => {
            if (argv.mode === 'global' && argv.replicas !== undefined) throw new CliError('ERR_USAGE', 'replicas can only be used with replicated mode');
            const dashed = Array.isArray((argv as Record<string, unknown>)['--']) ? ((argv as Record<string, unknown>)['--'] as unknown[]).map(String) : [];
            const args = [...asArray(argv.args), ...dashed];
            const spec = {
              ...(argv.name !== undefined ? { Name: argv.name } : {}),
              Labels: keyValues(argv.label),
              TaskTemplate: {
                ContainerSpec: {
                  Image: argv.image,
                  ...(args.length > 0 ? { Args: args } : {}),
                  ...(asArray(argv.env).length > 0 ? { Env: asArray(argv.env) } : {}),
                },
                ...(asArray(argv.constraint).length > 0 ? { Placement: { Constraints: asArray(argv.constraint) } } : {}),
              },
              Mode: argv.mode === 'global' ? { Global: {} } : { Replicated: argv.replicas !== undefined ? { Replicas: argv.replicas } : {} },
            };
            const res = await ctx.client(argv).post<{ ID: string; Warnings: string[] | null }>('/services/create', spec);
            for (const w of res.Warnings ?? []) ctx.io.err(`${w}\n`);
            ctx.io.out(`${res.ID}\n`);
          },
        )
        .command(
          ['ls', 'list'],
          'List services',
          (s) =>
            s
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Name}}, {{.Replicas}}, …)' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided' }),
          async (argv) => {
            const query = { ...filtersQuery(argv.filter), ...(argv.quiet ? {} : { status: 'true' }) };
            const list = (await ctx.client(argv).get<ServiceObject[]>('/services', query)).slice();
            list.sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name));
            const columns: Column<ServiceObject>[] = [
              { header: 'ID', field: 'ID', value: (s) => s.ID.slice(0, 12) },
              { header: 'NAME', field: 'Name', value: (s) => s.Spec.Name },
              { header: 'MODE', field: 'Mode', value: modeOf },
              { header: 'REPLICAS', field: 'Replicas', value: replicasOf },
              { header: 'IMAGE', field: 'Image', value: (s) => stripDigest(s.Spec.TaskTemplate?.ContainerSpec?.Image ?? '') },
              { header: 'PORTS', field: 'Ports', value: portsOf },
            ];
            printList(ctx, list, columns, { quiet: argv.quiet, ...(argv.format !== undefined ? { format: argv.format } : {}), id: (s) => s.ID });
          },
        )
        .command(
          'inspect <services..>',
          'Display detailed information on one or more services',
          (s) => s.positional('services', { type: 'string', array: true, demandOption: true }).option('format', { alias: 'f', type: 'string', describe: 'Format output using a Go-style template' }),
          async (argv) => {
            const c = ctx.client(argv);
            const out: unknown[] = [];
            for (const ref of asArray(argv.services)) out.push(await c.get(`/services/${encodeURIComponent(ref)}`, { insertDefaults: 'true' }));
            printInspect(ctx, out, argv.format);
          },
        )
        .command(
          ['rm <services..>', 'remove <services..>'],
          'Remove one or more services',
          (s) => s.positional('services', { type: 'string', array: true, demandOption: true }),
          async (argv) => {
            const c = ctx.client(argv);
            for (const ref of asArray(argv.services)) {
              await c.delete(`/services/${encodeURIComponent(ref)}`);
              ctx.io.out(`${ref}\n`);
            }
          },
        )
        .command(
          'scale <scales..>',
          'Scale one or multiple replicated services (SERVICE=REPLICAS)',
          (s) =>
            s
              .positional('scales', { type: 'string', array: true, demandOption: true })
              .option('detach', { alias: 'd', type: 'boolean', default: true, describe: 'Exit immediately (the only behaviour for now)' }),
          async (argv) => {
            const c = ctx.client(argv);
            for (const arg of asArray(argv.scales)) {
              const m = /^(.+)=(\d+)$/.exec(arg);
              if (m === null) throw new CliError('ERR_USAGE', `invalid scale specifier '${arg}': expected SERVICE=REPLICAS`);
              const [, ref, count] = m as unknown as [string, string, string];
              const svc = await c.get<ServiceObject>(`/services/${encodeURIComponent(ref)}`, { insertDefaults: 'false' });
              if (svc.Spec.Mode?.Replicated === undefined) throw new CliError('ERR_USAGE', `scale can only be used with replicated mode (${ref})`);
              const spec = { ...svc.Spec, Mode: { Replicated: { ...svc.Spec.Mode.Replicated, Replicas: Number(count) } } };
              await c.post(`/services/${svc.ID}/update`, spec, { version: svc.Version.Index });
              ctx.io.out(`${ref} scaled to ${count}\n`);
            }
          },
        )
        .demandCommand(1, 'shoal service needs a subcommand (see shoal service --help)'),
    ),
};
