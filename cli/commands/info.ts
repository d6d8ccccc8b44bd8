// `shoal info [--format TEMPLATE]`: the daemon's system and swarm information.
import type { CliCommand } from '../context.js';
import { formatInfo } from '../format/system.js';
import { renderTemplate } from '../format/template.js';

export const infoCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command(
      'info',
      'Display system-wide information',
      (y) => y.option('format', { alias: 'f', type: 'string', describe: 'Format the output using a Go-style template (e.g. {{.Swarm.LocalNodeState}})' }),
      async (argv) => {
        const info = await ctx.client(argv).get<Record<string, unknown>>('/info');
        ctx.io.out(argv.format !== undefined ? `${renderTemplate(argv.format, info)}\n` : formatInfo(info));
      },
    ),
};
