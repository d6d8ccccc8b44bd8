// `shoal version [--format TEMPLATE]`: client and daemon versions. The daemon half is omitted (and
// the command fails) when the daemon cannot be reached, after printing the client half, as docker does.
import type { CliCommand } from '../context.js';
import { clientVersion, formatVersion } from '../format/system.js';
import { renderTemplate } from '../format/template.js';

export const versionCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command(
      'version',
      'Show the Shoal version information',
      (y) => y.option('format', { alias: 'f', type: 'string', describe: 'Format the output using a Go-style template (e.g. {{.Server.APIVersion}})' }),
      async (argv) => {
        const client = clientVersion();
        let server: Record<string, unknown> | undefined;
        let failure: unknown;
        try {
          server = await ctx.client(argv).get<Record<string, unknown>>('/version');
        } catch (err) {
          failure = err;
        }
        if (argv.format !== undefined) {
          ctx.io.out(`${renderTemplate(argv.format, { Client: client, Server: server ?? null })}\n`);
        } else {
          ctx.io.out(formatVersion(client, server));
        }
        if (failure !== undefined) throw failure;
      },
    ),
};
