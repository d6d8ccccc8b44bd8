// The shoal CLI: parses the command line, runs the command, prints errors as one line (exit 1).
import yargs, { type Argv } from 'yargs';
import { CliContext, stdio, type CliCommand, type CliIo, type GlobalArgs } from './context.js';
import { CliError } from './errors.js';

/**
 * Where each top-level command lives, so that a command line naming one loads only its module
 * (start-up time is most of a short command's run: `stack` alone pulls in the YAML parser).
 * Anything else (no command, an unknown word, help before the command) loads the full list in
 * commands/index.ts, which stays the one place that orders `--help`; main.test.ts checks that
 * this table and that list name the same commands.
 */
export const COMMAND_LOADERS: Readonly<Record<string, () => Promise<CliCommand>>> = {
  info: async () => (await import('./commands/info.js')).infoCommand,
  version: async () => (await import('./commands/version.js')).versionCommand,
  swarm: async () => (await import('./commands/swarm.js')).swarmCommand,
  node: async () => (await import('./commands/node.js')).nodeCommand,
  service: async () => (await import('./commands/service.js')).serviceCommand,
  secret: async () => (await import('./commands/secret.js')).secretCommand,
  config: async () => (await import('./commands/config.js')).configCommand,
  stack: async () => (await import('./commands/stack.js')).stackCommand,
  network: async () => (await import('./commands/network.js')).networkCommand,
  exec: async () => (await import('./commands/exec.js')).execCommand,
  lab: async () => (await import('./lab/command.js')).labCommand,
};

/** The first word of `argv` that is not an option (nor the value of -H/--host); null when a help flag comes first. */
export function commandWord(argv: readonly string[]): string | null {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') return null;
    if (a === '-H' || a === '--host') {
      i++;
      continue;
    }
    if (a === '-h' || a === '--help') return null;
    if (!a.startsWith('-')) return a;
  }
  return null;
}

async function commandsFor(argv: readonly string[]): Promise<readonly CliCommand[]> {
  const word = commandWord(argv);
  const load = word === null || !Object.hasOwn(COMMAND_LOADERS, word) ? undefined : COMMAND_LOADERS[word];
  if (load !== undefined) return [await load()];
  return (await import('./commands/index.js')).COMMANDS;
}

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
  try {
    for (const command of await commandsFor(argv)) parser = command.register(parser, ctx);
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
