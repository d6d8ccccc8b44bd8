// `shoal service create|ls|ps|inspect|update|rollback|rm|scale`: as docker's, over the daemon's API.
// create, update, scale and rollback show convergence progress (progress.ts) unless `-d`.
import type { Argv } from 'yargs';
import type { ApiClient } from '../client/api-client.js';
import type { CliCommand, CliContext, GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { addServiceLogsCommand } from './service-logs.js';
import { resolveImageDigest } from '../stack/deploy.js';
import { mergedFilters, printTasks } from '../stack/ps.js';
import { asArray, filtersQuery, printInspect, printList, type Column } from './common.js';
import { viewFor, waitForService, withInterrupt } from './progress.js';

export interface ServiceObject {
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

export const SERVICE_COLUMNS: readonly Column<ServiceObject>[] = [
  { header: 'ID', field: 'ID', value: (s) => s.ID.slice(0, 12) },
  { header: 'NAME', field: 'Name', value: (s) => s.Spec.Name },
  { header: 'MODE', field: 'Mode', value: modeOf },
  { header: 'REPLICAS', field: 'Replicas', value: replicasOf },
  { header: 'IMAGE', field: 'Image', value: (s) => stripDigest(s.Spec.TaskTemplate?.ContainerSpec?.Image ?? '') },
  { header: 'PORTS', field: 'Ports', value: portsOf },
];

/** Waits for convergence unless detached; Ctrl-C stops the waiting only. */
async function converge(ctx: CliContext, client: ApiClient, ref: string, detach: boolean, rollback = false): Promise<void> {
  if (detach) return;
  await withInterrupt((signal) => waitForService(client, { ref, view: viewFor(ctx.io), signal, rollback }));
}

const DETACH = { alias: 'd', type: 'boolean', default: false, describe: 'Exit immediately instead of waiting for the service to converge' } as const;

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
      addServiceLogsCommand(y, ctx)
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
              .option('no-resolve-image', { type: 'boolean', default: false, describe: 'Do not query the registry to resolve image digest' })
              .option('detach', DETACH),
          async (argv) => {
            if (argv.mode === 'global' && argv.replicas !== undefined) throw new CliError('ERR_USAGE', 'replicas can only be used with replicated mode');
            const dashed = Array.isArray((argv as Record<string, unknown>)['--']) ? ((argv as Record<string, unknown>)['--'] as unknown[]).map(String) : [];
            const args = [...asArray(argv.args), ...dashed];
            const client = ctx.client(argv);
            const image = argv['no-resolve-image'] ? argv.image : ((await resolveImageDigest(client, argv.image, (l) => ctx.io.err(`${l}\n`))) ?? argv.image);
            const spec = {
              ...(argv.name !== undefined ? { Name: argv.name } : {}),
              Labels: keyValues(argv.label),
              TaskTemplate: {
                ContainerSpec: {
                  Image: image,
                  ...(args.length > 0 ? { Args: args } : {}),
                  ...(asArray(argv.env).length > 0 ? { Env: asArray(argv.env) } : {}),
                },
                ...(asArray(argv.constraint).length > 0 ? { Placement: { Constraints: asArray(argv.constraint) } } : {}),
              },
              Mode: argv.mode === 'global' ? { Global: {} } : { Replicated: argv.replicas !== undefined ? { Replicas: argv.replicas } : {} },
            };
            const res = await client.post<{ ID: string; Warnings: string[] | null }>('/services/create', spec);
            for (const w of res.Warnings ?? []) ctx.io.err(`${w}\n`);
            ctx.io.out(`${res.ID}\n`);
            await converge(ctx, client, res.ID, argv.detach);
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
            printList(ctx, list, SERVICE_COLUMNS, { quiet: argv.quiet, ...(argv.format !== undefined ? { format: argv.format } : {}), id: (s) => s.ID });
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
          (s) => s.positional('scales', { type: 'string', array: true, demandOption: true }).option('detach', DETACH),
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
            for (const arg of asArray(argv.scales)) await converge(ctx, c, arg.slice(0, arg.lastIndexOf('=')), argv.detach);
          },
        )
        .command(
          'ps <services..>',
          'List the tasks of one or more services',
          (s) =>
            s
              .positional('services', { type: 'string', array: true, demandOption: true })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display task IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Name}}, {{.Node}}, {{.CurrentState}}, …)' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided (desired-state, id, name, node)' })
              .option('no-trunc', { type: 'boolean', default: false, describe: 'Do not truncate output' })
              .option('no-resolve', { type: 'boolean', default: false, describe: 'Do not map IDs to names' }),
          async (argv) => {
            const c = ctx.client(argv);
            const ids: string[] = [];
            for (const ref of asArray(argv.services)) ids.push((await c.get<ServiceObject>(`/services/${encodeURIComponent(ref)}`, { insertDefaults: 'false' })).ID);
            await printTasks(ctx, c, mergedFilters({ service: ids }, argv.filter), { quiet: argv.quiet, noTrunc: argv['no-trunc'], noResolve: argv['no-resolve'], format: argv.format });
          },
        )
        .command(
          'update <service>',
          'Update a service',
          (s) =>
            s
              .positional('service', { type: 'string', demandOption: true })
              .option('image', { type: 'string', describe: 'Service image tag' })
              .option('replicas', { type: 'number', describe: 'Number of tasks' })
              .option('args', { type: 'string', describe: 'Service command args (space separated)' })
              .option('env-add', { type: 'string', array: true, describe: 'Add or update an environment variable' })
              .option('env-rm', { type: 'string', array: true, describe: 'Remove an environment variable' })
              .option('label-add', { type: 'string', array: true, describe: 'Add or update a service label' })
              .option('label-rm', { type: 'string', array: true, describe: 'Remove a label by its key' })
              .option('constraint-add', { type: 'string', array: true, describe: 'Add or update a placement constraint' })
              .option('constraint-rm', { type: 'string', array: true, describe: 'Remove a constraint' })
              .option('force', { type: 'boolean', default: false, describe: 'Force update even if no changes require it' })
              .option('rollback', { type: 'boolean', default: false, describe: 'Rollback to previous specification' })
              .option('no-resolve-image', { type: 'boolean', default: false, describe: 'Do not query the registry to resolve image digest' })
              .option('detach', DETACH),
          async (argv) => {
            const c = ctx.client(argv);
            const svc = await c.get<ServiceObject>(`/services/${encodeURIComponent(argv.service)}`, { insertDefaults: 'false' });
            if (argv.rollback) {
              await c.post(`/services/${svc.ID}/update`, svc.Spec, { version: svc.Version.Index, rollback: 'previous' });
              ctx.io.out(`${argv.service}\n`);
              await converge(ctx, c, argv.service, argv.detach, true);
              return;
            }
            const spec = JSON.parse(JSON.stringify(svc.Spec)) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
            const tt = (spec['TaskTemplate'] ??= {});
            const cs = (tt['ContainerSpec'] ??= {});
            if (argv.image !== undefined) {
              cs['Image'] = argv['no-resolve-image'] ? argv.image : ((await resolveImageDigest(c, argv.image, (l) => ctx.io.err(`${l}\n`))) ?? argv.image);
            }
            if (argv.replicas !== undefined) {
              if (spec['Mode']?.['Replicated'] === undefined) throw new CliError('ERR_USAGE', 'replicas can only be used with replicated mode');
              spec['Mode']['Replicated']['Replicas'] = argv.replicas;
            }
            if (argv.args !== undefined) cs['Args'] = argv.args.split(/\s+/).filter((a) => a !== '');
            const envRm = new Set(asArray(argv['env-rm']));
            const envAdd = asArray(argv['env-add']);
            if (envRm.size > 0 || envAdd.length > 0) {
              const keyOf = (e: string): string => e.split('=')[0] ?? e;
              const addKeys = new Set(envAdd.map(keyOf));
              cs['Env'] = [...((cs['Env'] ?? []) as string[]).filter((e) => !envRm.has(keyOf(e)) && !addKeys.has(keyOf(e))), ...envAdd];
            }
            const labels: Record<string, string> = { ...(spec['Labels'] ?? {}), ...keyValues(argv['label-add']) };
            for (const k of asArray(argv['label-rm'])) delete labels[k];
            spec['Labels'] = labels;
            const cAdd = asArray(argv['constraint-add']);
            const cRm = new Set(asArray(argv['constraint-rm']));
            if (cAdd.length > 0 || cRm.size > 0) {
              const place = (tt['Placement'] ??= {});
              place['Constraints'] = [...((place['Constraints'] ?? []) as string[]).filter((x) => !cRm.has(x) && !cAdd.includes(x)), ...cAdd];
            }
            if (argv.force) tt['ForceUpdate'] = (typeof tt['ForceUpdate'] === 'number' ? tt['ForceUpdate'] : 0) + 1;
            const res = await c.post<{ Warnings?: string[] | null } | undefined>(`/services/${svc.ID}/update`, spec, { version: svc.Version.Index });
            for (const w of res?.Warnings ?? []) ctx.io.err(`${w}\n`);
            ctx.io.out(`${argv.service}\n`);
            await converge(ctx, c, argv.service, argv.detach);
          },
        )
        .command(
          'rollback <service>',
          "Revert changes to a service's configuration",
          (s) => s.positional('service', { type: 'string', demandOption: true }).option('detach', DETACH),
          async (argv) => {
            const c = ctx.client(argv);
            const svc = await c.get<ServiceObject>(`/services/${encodeURIComponent(argv.service)}`, { insertDefaults: 'false' });
            await c.post(`/services/${svc.ID}/update`, svc.Spec, { version: svc.Version.Index, rollback: 'previous' });
            ctx.io.out(`${argv.service}\n`);
            await converge(ctx, c, argv.service, argv.detach, true);
          },
        )
        .demandCommand(1, 'shoal service needs a subcommand (see shoal service --help)'),
    ),
};
