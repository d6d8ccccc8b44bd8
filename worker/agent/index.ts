// The agent's public surface, for the daemon.
export { Agent, defaultNodeDescription, type AgentCounters, type AgentIdentity, type AgentOptions } from './agent.js';
export { AgentError, type AgentErrorCode } from './errors.js';
export { AGENT_DB_DIR } from './agent-db.js';
