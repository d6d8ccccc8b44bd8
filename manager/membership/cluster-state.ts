// What the manager keeps in the store beyond Docker's object shapes, and the CA's view of nodes.
//
// The Cluster object (one per swarm) also carries, as swarmkit's api.Cluster does:
//   ShoalCA       the ClusterCA's data (root CA with its key, join tokens, expiry): every manager
//                 rebuilds its CA from it, so any manager can issue certificates. Sealed at rest
//                 like every record; the control API must strip it (and JoinTokens) from reads.
//   RemovedNodes  nodes removed from the swarm (`node rm`, a removed manager): their certificates
//                 are refused on every manager's cluster port (RemovedNodeList), forever.
import type { CANodeRegistry, NodeRecord } from '../../ca/node-registry.js';
import { MANAGER_ROLE, WORKER_ROLE, type NodeRole } from '../../ca/roles.js';
import type { Cluster, ReadTx } from '../store/index.js';

export type { RemovedNode } from '../store/index.js';
/** The Cluster object with its manager-only fields (ShoalCA, RemovedNodes): see store/types.ts. */
export type ManagedCluster = Cluster;

export function clusterOf(tx: ReadTx): ManagedCluster | undefined {
  return tx.find('cluster')[0] as ManagedCluster | undefined;
}

/**
 * The CA server's node registry over the store: desired roles from Node objects, the removed list
 * from the Cluster object. Certificates the CA issued are remembered locally (the store has no
 * certificate field yet); a node the CA just issued for but that has no Node object yet (it has
 * not finished joining) is known from that local record.
 */
export class StoreNodeRegistry implements CANodeRegistry {
  private readonly issued = new Map<string, { role: NodeRole; certificatePem: string }>();
  /** Bounded: issued records beyond this many are forgotten oldest first (they are only a join-time convenience). */
  private readonly maxIssuedRecords = 10_000;

  constructor(private readonly store: () => ReadTx | null) {}

  addNode(nodeId: string, role: NodeRole, certificatePem: string): void {
    this.issued.set(nodeId, { role, certificatePem });
    if (this.issued.size > this.maxIssuedRecords) this.issued.delete(this.issued.keys().next().value!);
  }

  get(nodeId: string): NodeRecord | null {
    const tx = this.store();
    const node = tx?.get('node', nodeId);
    const local = this.issued.get(nodeId);
    const removed = this.isRemoved(nodeId);
    if (node !== undefined) {
      return { nodeId, desiredRole: node.Spec.Role === 'manager' ? MANAGER_ROLE : WORKER_ROLE, certificatePem: local?.certificatePem ?? '', removed };
    }
    if (local !== undefined) return { nodeId, desiredRole: local.role, certificatePem: local.certificatePem, removed };
    return null;
  }

  recordCertificate(nodeId: string, certificatePem: string): void {
    const local = this.issued.get(nodeId);
    const node = this.store()?.get('node', nodeId);
    const role = node !== undefined ? (node.Spec.Role === 'manager' ? MANAGER_ROLE : WORKER_ROLE) : local?.role;
    if (role !== undefined) this.addNode(nodeId, role, certificatePem);
  }

  isRemoved(nodeId: string): boolean {
    const tx = this.store();
    if (tx === null) return false;
    return clusterOf(tx)?.RemovedNodes?.some((r) => r.ID === nodeId) ?? false;
  }
}
