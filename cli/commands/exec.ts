// `shoal exec [-e K=V] [-u USER] [-w DIR] SERVICE|TASK -- CMD [ARG…]`: runs CMD in a running task's
// container (a service picks one of its running tasks) through the daemon's
// `POST /services/{id}/exec` (or `/tasks/{id}/exec`), prints its stdout and stderr as they come, and
// exits with its exit code. A command that could not be run exits 126, as `docker exec` does.
import type { CliCommand, CliContext } from '../context.js';
import type { ApiClient } from '../client/api-client.js';
import { CliError, DaemonResponseError } from '../errors.js';
import { FrameDecoder, STDERR, SYSTEM_ERR } from '../daemon/swarm/stdcopy.js';
import { asArray } from './common.js';

export interface ExecOptions {
  readonly env: readonly string[];
  readonly user?: string;
  readonly workdir?: string;
}

interface ExitFrame {
  readonly ExitCode: number;
  readonly Error: string;
  readonly TaskID?: string;
  readonly NodeID?: string;
}

export const EXIT_CANNOT_RUN = 126;

/** Runs the command; resolves with the exit code the CLI should exit with. */
export async function runExec(ctx: CliContext, client: ApiClient, ref: string, argv: readonly string[], o: ExecOptions): Promise<number> {
  if (argv.length === 0) throw new CliError('ERR_USAGE', 'exec needs a command after the service or task: shoal exec web -- ls /');
  const body = { Cmd: argv, Env: o.env, ...(o.user !== undefined ? { User: o.user } : {}), ...(o.workdir !== undefined ? { WorkingDir: o.workdir } : {}) };
  let res;
  try {
    res = await client.stream('POST', `/services/${encodeURIComponent(ref)}/exec`, { body });
  } catch (err) {
    if (!(err instanceof DaemonResponseError && err.status === 404)) throw err;
    try {
      res = await client.stream('POST', `/tasks/${encodeURIComponent(ref)}/exec`, { body });
    } catch (err2) {
      if (err2 instanceof DaemonResponseError && err2.status === 404) throw new CliError('ERR_USAGE', `no such service or task: ${ref}`);
      throw err2;
    }
  }
  // A command may run quietly for long: the client's idle timeout must not cut its stream.
  res.socket?.setTimeout(0);
  const decoder = new FrameDecoder();
  let exit: ExitFrame | null = null;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    for (const f of decoder.push(chunk)) {
      if (f.stream === SYSTEM_ERR) exit = JSON.parse(f.payload.toString('utf8')) as ExitFrame;
      else if (f.stream === STDERR) ctx.io.err(f.payload.toString('utf8'));
      else ctx.io.out(f.payload.toString('utf8'));
    }
  }
  if (exit === null) throw new CliError('ERR_DAEMON_RESPONSE', 'the exec stream ended without an exit code (the daemon or the task’s node went away)');
  if (exit.Error !== '' && exit.ExitCode < 0) {
    ctx.io.err(`Error: ${exit.Error}\n`);
    return EXIT_CANNOT_RUN;
  }
  return exit.ExitCode;
}

export const execCommand: CliCommand = {
  register: (parser, ctx) =>
    parser.command(
      'exec <target> [command..]',
      'Run a command in a running task of a service (or in a given task)',
      (y) =>
        y
          .positional('target', { type: 'string', demandOption: true, describe: 'Service or task name or ID' })
          .positional('command', { type: 'string', array: true, describe: 'The command and its arguments (after --)' })
          .option('env', { alias: 'e', type: 'string', array: true, describe: 'Set environment variables' })
          .option('user', { alias: 'u', type: 'string', describe: 'Username or UID (format: "<name|uid>[:<group|gid>]")' })
          .option('workdir', { alias: 'w', type: 'string', describe: 'Working directory inside the container' }),
      async (argv) => {
        const dashed = Array.isArray((argv as Record<string, unknown>)['--']) ? ((argv as Record<string, unknown>)['--'] as unknown[]).map(String) : [];
        const command = [...asArray(argv.command), ...dashed];
        ctx.exitCode = await runExec(ctx, ctx.client(argv), argv.target, command, {
          env: asArray(argv.env),
          ...(argv.user !== undefined ? { user: argv.user } : {}),
          ...(argv.workdir !== undefined ? { workdir: argv.workdir } : {}),
        });
      },
    ),
};
