// Node roles as certificates carry them (the OU) and as the protobuf enum carries them.
import { NodeRole as ProtoNodeRole } from '../proto/gen/shoal/types.js';

export type NodeRole = 'swarm-manager' | 'swarm-worker';

export const MANAGER_ROLE: NodeRole = 'swarm-manager';
export const WORKER_ROLE: NodeRole = 'swarm-worker';
/** Extra DNS SAN on manager certificates, as swarm does: the name clients expect of a CA server. */
export const CA_SAN = 'swarm-ca';

export function isNodeRole(value: unknown): value is NodeRole {
  return value === MANAGER_ROLE || value === WORKER_ROLE;
}

export function roleToProto(role: NodeRole): ProtoNodeRole {
  return role === MANAGER_ROLE ? ProtoNodeRole.NODE_ROLE_MANAGER : ProtoNodeRole.NODE_ROLE_WORKER;
}

export function roleFromProto(role: ProtoNodeRole): NodeRole | null {
  if (role === ProtoNodeRole.NODE_ROLE_MANAGER) return MANAGER_ROLE;
  if (role === ProtoNodeRole.NODE_ROLE_WORKER) return WORKER_ROLE;
  return null;
}
