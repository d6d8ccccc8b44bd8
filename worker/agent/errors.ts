// Typed errors of the agent.
export type AgentErrorCode =
  /** The agent's local database could not be opened or read (another agent holds it, or it is damaged). */
  | 'ERR_AGENT_DB'
  /** No manager address is known: the agent needs at least one to start. */
  | 'ERR_AGENT_NO_MANAGERS'
  /** A manager answered the session in a way the agent cannot use. */
  | 'ERR_AGENT_PROTOCOL'
  /** The agent was closed. */
  | 'ERR_AGENT_CLOSED';

export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(readonly code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
