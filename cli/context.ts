// What every shoal command gets: output streams, a daemon client for the chosen host, and a way
// to set the exit code (e.g. `lab exec` passes its command's code through).
import type { Argv } from 'yargs';
import { ApiClient, resolveHost } from './client/api-client.js';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const stdio: CliIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

/** The global options every command sees. */
export interface GlobalArgs {
  readonly host?: string;
}

export class CliContext {
  exitCode = 0;
  private readonly clients: ApiClient[] = [];

  constructor(
    readonly io: CliIo,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** A client of the daemon at `-H`, else SHOAL_HOST, DOCKER_HOST, or the default socket. */
  client(argv: GlobalArgs): ApiClient {
    const c = new ApiClient(resolveHost(argv.host, this.env), this.env['DOCKER_API_VERSION'] || undefined);
    this.clients.push(c);
    return c;
  }

  close(): void {
    for (const c of this.clients.splice(0)) c.close();
  }
}

/**
 * A top-level command (`version`, `info`, `lab`; the swarm/node/service/... commands are added the
 * same way in commands/index.ts). It registers itself, its flags and subcommands on the parser.
 */
export interface CliCommand {
  register(parser: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs>;
}
