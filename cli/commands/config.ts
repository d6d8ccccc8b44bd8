// `shoal config create|ls|inspect|rm`: as docker's, over the daemon's API (docker-api.md §2.20).
// Unlike secrets, a config's data is returned by the API, so `inspect` shows `Spec.Data` (base64).
import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { CliCommand, GlobalArgs } from '../context.js';
import { ago, asArray, filtersQuery, printInspect, printList, type Column } from './common.js';

export interface ConfigObject {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Spec: { readonly Name: string; readonly Labels?: Readonly<Record<string, string>>; readonly Data?: string; readonly Templating?: { readonly Name?: string } };
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `key=value` flags → a labels map (a bare key gets ""). */
export function labelsOf(list: unknown): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const l of asArray(list)) {
    const i = l.indexOf('=');
    labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  return labels;
}

export const configColumns: readonly Column<ConfigObject>[] = [
  { header: 'ID', field: 'ID', value: (c) => c.ID },
  { header: 'NAME', field: 'Name', value: (c) => c.Spec.Name },
  { header: 'CREATED', field: 'CreatedAt', value: (c) => ago(c.CreatedAt) },
  { header: 'UPDATED', field: 'UpdatedAt', value: (c) => ago(c.UpdatedAt) },
];

export const configCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command('config', 'Manage Swarm configs', (y: Argv<GlobalArgs>) =>
      y
        .command(
          'create <name> <file>',
          'Create a config from a file or STDIN ("-") as content',
          (s) =>
            s
              .positional('name', { type: 'string', demandOption: true })
              .positional('file', { type: 'string', demandOption: true, describe: 'File with the content, or - for STDIN' })
              .option('label', { alias: 'l', type: 'string', array: true, describe: 'Config labels (key=value)' })
              .option('template-driver', { type: 'string', describe: 'Template driver' }),
          async (argv) => {
            const data = argv.file === '-' || argv.file === '' ? await readStdin() : await readFile(argv.file);
            const driver = argv['template-driver'];
            const body = {
              Name: argv.name,
              Labels: labelsOf(argv.label),
              Data: data.toString('base64'),
              ...(driver !== undefined && driver !== '' ? { Templating: { Name: driver } } : {}),
            };
            const res = await ctx.client(argv).post<{ ID: string }>('/configs/create', body);
            ctx.io.out(`${res.ID}\n`);
          },
        )
        .command(
          ['ls', 'list'],
          'List configs',
          (s) =>
            s
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only display IDs' })
              .option('format', { type: 'string', describe: 'Format output using a Go-style template ({{.ID}}, {{.Name}}, {{.CreatedAt}}, {{.UpdatedAt}})' })
              .option('filter', { alias: 'f', type: 'string', array: true, describe: 'Filter output based on conditions provided (id, label, name)' }),
          async (argv) => {
            const list = (await ctx.client(argv).get<ConfigObject[]>('/configs', filtersQuery(argv.filter))).slice();
            list.sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name));
            printList(ctx, list, configColumns, { quiet: argv.quiet, ...(argv.format !== undefined ? { format: argv.format } : {}), id: (c) => c.ID });
          },
        )
        .command(
          'inspect <configs..>',
          'Display detailed information on one or more configs',
          (s) =>
            s
              .positional('configs', { type: 'string', array: true, demandOption: true })
              .option('format', { alias: 'f', type: 'string', describe: 'Format output using a Go-style template' })
              .option('pretty', { type: 'boolean', default: false, describe: 'Print the information in a human friendly format' }),
          async (argv) => {
            const c = ctx.client(argv);
            const out: ConfigObject[] = [];
            for (const ref of asArray(argv.configs)) out.push(await c.get<ConfigObject>(`/configs/${encodeURIComponent(ref)}`));
            if (argv.pretty) {
              ctx.io.out(out.map(prettyConfig).join('\n\n') + '\n');
              return;
            }
            printInspect(ctx, out, argv.format);
          },
        )
        .command(
          ['rm <configs..>', 'remove <configs..>'],
          'Remove one or more configs',
          (s) => s.positional('configs', { type: 'string', array: true, demandOption: true }),
          async (argv) => {
            const c = ctx.client(argv);
            for (const ref of asArray(argv.configs)) {
              await c.delete(`/configs/${encodeURIComponent(ref)}`);
              ctx.io.out(`${ref}\n`);
            }
          },
        )
        .demandCommand(1, 'shoal config needs a subcommand (see shoal config --help)'),
    ),
};

/** docker config inspect --pretty. */
function prettyConfig(c: ConfigObject): string {
  const labels = Object.entries(c.Spec.Labels ?? {});
  const lines = [
    `ID:              ${c.ID}`,
    `Name:              ${c.Spec.Name}`,
    ...(labels.length > 0 ? ['Labels:', ...labels.map(([k, v]) => ` - ${k}=${v}`)] : []),
    `Created at:            ${c.CreatedAt}`,
    `Updated at:            ${c.UpdatedAt}`,
    'Data:',
    Buffer.from(c.Spec.Data ?? '', 'base64').toString('utf8').replace(/\n$/, ''),
  ];
  return lines.join('\n');
}
