// What the CA server needs to know about nodes: who joined with which role, which role the cluster
// wants each node to have now (promote/demote), and who was removed. The manager's store implements
// this later; InMemoryNodeRegistry is the stand-in for tests, benchmarks and a lone CA.
import type { RemovedNodeList } from '../proto/grpc/authz.js';
import type { NodeRole } from './roles.js';
import type { RoleSource } from './renewal.js';

export interface NodeRecord {
  readonly nodeId: string;
  /** The role the cluster wants; the next certificate's OU. */
  readonly desiredRole: NodeRole;
  readonly certificatePem: string;
  readonly removed: boolean;
}

export interface CANodeRegistry extends RemovedNodeList {
  addNode(nodeId: string, role: NodeRole, certificatePem: string): void;
  get(nodeId: string): NodeRecord | null;
  recordCertificate(nodeId: string, certificatePem: string): void;
}

type RoleListener = (role: NodeRole) => void;

/** Bounded by the cluster's size; removed nodes stay listed (they must keep being refused). */
export class InMemoryNodeRegistry implements CANodeRegistry {
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly listeners = new Map<string, Set<RoleListener>>();

  addNode(nodeId: string, role: NodeRole, certificatePem: string): void {
    this.nodes.set(nodeId, { nodeId, desiredRole: role, certificatePem, removed: false });
  }

  get(nodeId: string): NodeRecord | null {
    return this.nodes.get(nodeId) ?? null;
  }

  recordCertificate(nodeId: string, certificatePem: string): void {
    const node = this.nodes.get(nodeId);
    if (node !== undefined) this.nodes.set(nodeId, { ...node, certificatePem });
  }

  isRemoved(nodeId: string): boolean {
    return this.nodes.get(nodeId)?.removed ?? false;
  }

  remove(nodeId: string): void {
    const node = this.nodes.get(nodeId);
    if (node !== undefined) this.nodes.set(nodeId, { ...node, removed: true });
  }

  /** promote / demote: the node's next certificate carries `role`; watchers hear it at once. */
  setDesiredRole(nodeId: string, role: NodeRole): void {
    const node = this.nodes.get(nodeId);
    if (node === undefined || node.desiredRole === role) return;
    this.nodes.set(nodeId, { ...node, desiredRole: role });
    for (const listener of this.listeners.get(nodeId) ?? []) listener(role);
  }

  certificates(): string[] {
    return [...this.nodes.values()].filter((n) => !n.removed).map((n) => n.certificatePem);
  }

  /** The desired role of one node as a RoleSource (what a node learns from its dispatcher session later). */
  roleSource(nodeId: string): RoleSource {
    return {
      subscribe: (listener) => {
        let set = this.listeners.get(nodeId);
        if (set === undefined) {
          set = new Set();
          this.listeners.set(nodeId, set);
        }
        set.add(listener);
        const current = this.nodes.get(nodeId)?.desiredRole;
        if (current !== undefined) listener(current);
        return () => set.delete(listener);
      },
    };
  }
}
