// `shoal stack deploy|ls|ps|services|rm`: Compose files deployed as swarm services, networks,
// secrets and configs labelled com.docker.stack.namespace (cli/stack/ does the work).
import type { Argv } from 'yargs';
import type { CliCommand, GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { loadComposeFile } from '../stack/compose.js';
import { convertStack, NAMESPACE_LABEL } from '../stack/convert.js';
import { deployStack, removeStack, type ResolveImage } from '../stack/deploy.js';
import { mergedFilters, printTasks } from '../stack/ps.js';
import { asArray, printList, type Column } from './common.js';
import { viewFor, waitForService, withInterrupt } from './progress.js';
import { SERVICE_COLUMNS, type ServiceObject } from './service.js';

interface StackRow {
  readonly Name: string;
  readonly Services: number;
}

export const stackCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command('stack', 'Manage Swarm stacks', (y: Argv<GlobalArgs>) =>
      y
        .command(
          ['deploy <stack>', 'up <stack>'],
          'Deploy a new stack or update an existing stack',
          (s) =>
            s
              .positional('stack', { type: 'string', demandOption: true })
              .option('compose-file', { alias: 'c', type: 'string', demandOption: true, describe: 'Path to a Compose file' })
              .option('prune', { type: 'boolean', default: false, describe: 'Prune services that are no longer referenced' })
              .option('resolve-image', { type: 'string', choices: ['always', 'changed', 'never'], default: 'always', describe: 'Query the registry to resolve image digest and supported platforms' })
              .option('detach', { alias: 'd', type: 'boolean', default: true, describe: 'Exit immediately instead of waiting for the stack services to converge' })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Suppress progress output' })
              .option('with-registry-auth', { type: 'boolean', default: false, describe: 'Send registry authentication details to Swarm agents (not supported: warned)' }),
          async (argv) => {
            const files = asArray(argv['compose-file']);
            if (files.length !== 1) throw new CliError('ERR_USAGE', 'stack deploy takes exactly one --compose-file (merging several files is not supported)');
            const plan = convertStack(loadComposeFile(files[0]!, ctx.env), argv.stack);
            for (const w of plan.warnings) ctx.io.err(`${w}\n`);
            if (argv['with-registry-auth']) ctx.io.err('Ignoring unsupported option: --with-registry-auth\n');
            if (argv.detach && !argv.quiet) ctx.io.err('Since --detach=false was not specified, tasks will be created in the background.\n');
            const client = ctx.client(argv);
            const out = (line: string): void => {
              if (!argv.quiet) ctx.io.out(`${line}\n`);
            };
            const res = await deployStack(client, plan, { prune: argv.prune, resolveImage: argv['resolve-image'] as ResolveImage, out, warn: (l) => ctx.io.err(`${l}\n`) });
            if (argv.detach) return;
            await withInterrupt(async (signal) => {
              for (const [name, id] of res.serviceIds) {
                if (signal.aborted) break;
                ctx.io.out(`${name}\n`);
                await waitForService(client, { ref: id, view: viewFor(ctx.io), signal });
              }
            });
          },
        )
        .command(
          ['ls', 'list'],
          'List stacks',
          (s) => s.option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.Name}}, {{.Services}})' }),
          async (argv) => {
            const services = await ctx.client(argv).get<ServiceObject[]>('/services', { filters: JSON.stringify({ label: { [NAMESPACE_LABEL]: true } }) });
            const counts = new Map<string, number>();
            for (const s of services) {
              const ns = (s.Spec.Labels as Record<string, string> | undefined)?.[NAMESPACE_LABEL];
              if (ns === undefined) throw new CliError('ERR_DAEMON_RESPONSE', `cannot get label ${NAMESPACE_LABEL} for service ${s.ID}`);
              counts.set(ns, (counts.get(ns) ?? 0) + 1);
            }
            const rows: StackRow[] = [...counts.entries()].map(([Name, Services]) => ({ Name, Services })).sort((a, b) => a.Name.localeCompare(b.Name));
            const columns: Column<StackRow>[] = [
              { header: 'NAME', field: 'Name', value: (r) => r.Name },
              { header: 'SERVICES', field: 'Services', value: (r) => String(r.Services) },
            ];
            printList(ctx, rows, columns, { ...(argv.format !== undefined ? { format: argv.format } : {}), id: (r) => r.Name });
          },
        )
        .command(
          'ps <stack>',
          'List the tasks in the stack',
          (s) =>
            s
              .positional('stack', { type: 'string', demandOption: true })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display task IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Name}}, {{.Node}}, {{.CurrentState}}, …)' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided (desired-state, id, name, node)' })
              .option('no-trunc', { type: 'boolean', default: false, describe: 'Do not truncate output' })
              .option('no-resolve', { type: 'boolean', default: false, describe: 'Do not map IDs to names' }),
          async (argv) => {
            const query = mergedFilters({ label: [`${NAMESPACE_LABEL}=${argv.stack}`] }, argv.filter);
            const n = await printTasks(ctx, ctx.client(argv), query, { quiet: argv.quiet, noTrunc: argv['no-trunc'], noResolve: argv['no-resolve'], format: argv.format });
            if (n === 0 && argv.filter === undefined) throw new CliError('ERR_USAGE', `nothing found in stack: ${argv.stack}`);
          },
        )
        .command(
          'services <stack>',
          'List the services in the stack',
          (s) =>
            s
              .positional('stack', { type: 'string', demandOption: true })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Name}}, {{.Replicas}}, …)' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided (id, label, mode, name)' }),
          async (argv) => {
            const query = { ...mergedFilters({ label: [`${NAMESPACE_LABEL}=${argv.stack}`] }, argv.filter), status: 'true' };
            const list = (await ctx.client(argv).get<ServiceObject[]>('/services', query)).slice().sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name));
            if (list.length === 0 && argv.filter === undefined) {
              ctx.io.err(`Nothing found in stack: ${argv.stack}\n`);
              return;
            }
            printList(ctx, list, SERVICE_COLUMNS as Column<ServiceObject>[], { quiet: argv.quiet, ...(argv.format !== undefined ? { format: argv.format } : {}), id: (s) => s.ID });
          },
        )
        .command(
          ['rm <stacks..>', 'remove <stacks..>', 'down <stacks..>'],
          'Remove one or more stacks',
          (s) => s.positional('stacks', { type: 'string', array: true, demandOption: true }),
          async (argv) => {
            const client = ctx.client(argv);
            for (const ns of asArray(argv.stacks)) {
              const found = await removeStack(client, ns, (l) => ctx.io.out(`${l}\n`), (l) => ctx.io.err(`${l}\n`));
              if (!found) ctx.io.err(`Nothing found in stack: ${ns}\n`);
            }
          },
        )
        .demandCommand(1, 'shoal stack needs a subcommand (see shoal stack --help)'),
    ),
};
