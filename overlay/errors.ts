// Typed errors of the overlay data plane. Every failed system command becomes an
// OverlayCommandError naming the command line and its stderr, because the task controller
// copies the message into the task's status and an operator must be able to act on it.

export type OverlayErrorCode =
  | 'ERR_OVERLAY_COMMAND'
  | 'ERR_OVERLAY_ENCRYPTION_UNSUPPORTED'
  | 'ERR_OVERLAY_INVALID_SPEC'
  | 'ERR_OVERLAY_ENDPOINT_EXISTS'
  | 'ERR_OVERLAY_ENDPOINT_UNKNOWN'
  | 'ERR_OVERLAY_NETWORK_EXISTS'
  | 'ERR_OVERLAY_REMOVED'
  | 'ERR_OVERLAY_DNS';

export class OverlayError extends Error {
  override readonly name: string = 'OverlayError';
  constructor(
    readonly code: OverlayErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A command (`ip`, `bridge`, `iptables`, `nsenter`, …) exited non-zero, was killed or could not start. */
export class OverlayCommandError extends OverlayError {
  override readonly name = 'OverlayCommandError';
  constructor(
    /** argv as run, e.g. ['nsenter', '--net=/run/netns/x', 'ip', 'link', 'add', …]. */
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    /** Why it failed when it did not simply exit non-zero (timeout, spawn error, signal). */
    readonly reason?: string,
  ) {
    const what = reason ?? `exit code ${exitCode}`;
    const err = stderr.trim();
    super('ERR_OVERLAY_COMMAND', `command failed (${what}): ${argv.join(' ')}${err ? `: ${err}` : ''}`);
  }
}

/** `--opt encrypted` on an overlay network: refused before anything is created. */
export class EncryptedOverlayUnsupportedError extends OverlayError {
  override readonly name = 'EncryptedOverlayUnsupportedError';
  constructor(readonly networkName: string) {
    super(
      'ERR_OVERLAY_ENCRYPTION_UNSUPPORTED',
      `network ${networkName}: --opt encrypted is not supported: encrypted overlays need IPsec ESP ` +
        `(the kernel of this host has CONFIG_INET_ESP unset, so 'ip xfrm state add … proto esp' fails) ` +
        `or WireGuard (module absent), and neither could be tested here; create the network without ` +
        `--opt encrypted, or keep sensitive traffic encrypted at the application layer (TLS)`,
    );
  }
}
