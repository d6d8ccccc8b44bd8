// Errors the shoal CLI prints as one line (and exits 1).

export type CliErrorCode = 'ERR_USAGE' | 'ERR_DAEMON_UNREACHABLE' | 'ERR_DAEMON_RESPONSE' | 'ERR_BAD_HOST' | 'ERR_TEMPLATE' | 'ERR_LAB';

export class CliError extends Error {
  override readonly name: string = 'CliError';
  constructor(
    readonly code: CliErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The daemon answered with an error status; the message reads as docker's. */
export class DaemonResponseError extends CliError {
  override readonly name = 'DaemonResponseError';
  constructor(
    readonly status: number,
    readonly daemonMessage: string,
  ) {
    super('ERR_DAEMON_RESPONSE', `Error response from daemon: ${daemonMessage}`);
  }
}
