// The shoal CLI: parses the command line, runs the command, prints errors as one line (exit 1).
import yargs, { type Argv } from 'yargs';
import { COMMANDS } from './commands/index.js';
import { CliContext, stdio, type CliIo, type GlobalArgs } from './context.js';
import { CliError } from './errors.js';

function baseParser(argv: readonly string[]): Argv<GlobalArgs> {
  return yargs([...argv])
    .scriptName('shoal')
    .usage('Usage: shoal [OPTIONS] COMMAND\n\nA cluster orchestrator implementing Docker swarm mode.')
    .option('host', {
      alias: 'H',
      type: 'string',
      global: true,
      describe: 'Daemon socket to connect to (unix:///path); default $SHOAL_HOST, $DOCKER_HOST, unix:///run/shoal/shoal.sock',
    })
    .parserConfiguration({ 'populate--': true })
    .strict()
    .recommendCommands()
    .demandCommand(1, 'shoal needs a command (see shoal --help)')
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new CliError('ERR_USAGE', msg ?? 'invalid arguments');
    }) as Argv<GlobalArgs>;
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const ctx = new CliContext(io, env);
  let parser = baseParser(argv);
  for (const command of COMMANDS) parser = command.register(parser, ctx);
  try {
    await parser.parseAsync([...argv], {}, (err, _parsed, output) => {
      if (err == null && output !== '') io.out(`${output}\n`);
    });
    return ctx.exitCode;
  } catch (err) {
    io.err(`${oneLine(err)}\n`);
    return 1;
  } finally {
    ctx.close();
  }
}

/** The one line a failure is reported as. */
export function oneLine(err: unknown): string {
  if (err instanceof CliError) {
    const firstLine = err.message.split('\n')[0] ?? err.message;
    // Multi-line details (a daemon's log tail) stay, indented under the one-line summary.
    const rest = err.message.split('\n').slice(1);
    return rest.length === 0 ? firstLine : `${firstLine}\n${rest.map((l) => `  ${l}`).join('\n')}`;
  }
  if (err instanceof Error) return `shoal: ${err.message}`;
  return `shoal: ${String(err)}`;
}
