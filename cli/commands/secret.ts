// `shoal secret create|ls|rm`: as docker's, over the daemon's API.
import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { CliCommand, GlobalArgs } from '../context.js';
import { ago, asArray, filtersQuery, printList, type Column } from './common.js';

interface SecretObject {
  readonly ID: string;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Spec: { readonly Name: string; readonly Driver?: { readonly Name?: string } };
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const secretCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command('secret', 'Manage Swarm secrets', (y: Argv<GlobalArgs>) =>
      y
        .command(
          'create <name> <file>',
          'Create a secret from a file or STDIN ("-") as content',
          (s) =>
            s
              .positional('name', { type: 'string', demandOption: true })
              .positional('file', { type: 'string', demandOption: true, describe: 'File with the content, or - for STDIN' })
              .option('label', { alias: 'l', type: 'string', array: true, describe: 'Secret labels (key=value)' }),
          async (argv) => {
            const data = argv.file === '-' || argv.file === '' ? await readStdin() : await readFile(argv.file);
            const labels: Record<string, string> = {};
            for (const l of asArray(argv.label)) {
              const i = l.indexOf('=');
              labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
            }
            const res = await ctx.client(argv).post<{ ID: string }>('/secrets/create', { Name: argv.name, Labels: labels, Data: data.toString('base64') });
            ctx.io.out(`${res.ID}\n`);
          },
        )
        .command(
          ['ls', 'list'],
          'List secrets',
          (s) =>
            s
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Name}}, …)' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided' }),
          async (argv) => {
            const list = (await ctx.client(argv).get<SecretObject[]>('/secrets', filtersQuery(argv.filter))).slice();
            list.sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name));
            const columns: Column<SecretObject>[] = [
              { header: 'ID', field: 'ID', value: (s) => s.ID },
              { header: 'NAME', field: 'Name', value: (s) => s.Spec.Name },
              { header: 'DRIVER', field: 'Driver', value: (s) => s.Spec.Driver?.Name ?? '' },
              { header: 'CREATED', field: 'CreatedAt', value: (s) => ago(s.CreatedAt) },
              { header: 'UPDATED', field: 'UpdatedAt', value: (s) => ago(s.UpdatedAt) },
            ];
            printList(ctx, list, columns, { quiet: argv.quiet, ...(argv.format !== undefined ? { format: argv.format } : {}), id: (s) => s.ID });
          },
        )
        .command(
          ['rm <secrets..>', 'remove <secrets..>'],
          'Remove one or more secrets',
          (s) => s.positional('secrets', { type: 'string', array: true, demandOption: true }),
          async (argv) => {
            const c = ctx.client(argv);
            for (const ref of asArray(argv.secrets)) {
              await c.delete(`/secrets/${encodeURIComponent(ref)}`);
              ctx.io.out(`${ref}\n`);
            }
          },
        )
        .demandCommand(1, 'shoal secret needs a subcommand (see shoal secret --help)'),
    ),
};
