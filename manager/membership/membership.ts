// Raft membership of the managers, kept in step with the store's Node objects.
//
//   every manager   reconcile(): the transport's peers = Raft voters + learners, addressed by
//                   their Node object's ManagerStatus.Addr (what a joiner's Join carried).
//   the leader      reconcile(): promotes learners that caught up (addLearner → addNode), and
//                   writes each member's ManagerStatus (Reachability from Raft progress, Leader
//                   flag) when it changed; addMember() for RaftMembership.Join; removeMember()
//                   for leave / demote / remove, refusing what would lose quorum unless forced
//                   and moving leadership away first when the leader itself goes.
import type { Logger } from 'pino';

import type { RaftNode } from '../../raft/node.js';
import type { GrpcTransport } from '../../raft/transport/grpc.js';
import { ManagerError, NoLeaderError } from '../errors.js';
import { SequenceConflictError, type MemoryStore, type Node, type Tx } from '../store/index.js';
import { clusterOf, type ManagedCluster } from './cluster-state.js';
import { MembershipChanger } from './raft-membership.js';

export type RemovalAction = 'leave' | 'demote' | 'remove';

export interface MemberInfo {
  readonly nodeId: string;
  readonly addr: string | null;
  readonly voter: boolean;
  readonly leader: boolean;
  /** As the leader sees it (Raft progress); on a follower, the Node object's ManagerStatus. */
  readonly reachable: boolean;
}

export interface MembershipOptions {
  readonly selfId: string;
  readonly selfAddr: string;
  readonly node: RaftNode;
  readonly store: MemoryStore;
  readonly transport: GrpcTransport;
  readonly electionTimeoutMs: number;
  /** A learner is promoted once its match index is within this many entries of the commit index. */
  readonly promoteLagEntries?: number;
  readonly confChangeTimeoutMs?: number;
  readonly logger: Logger;
}

export type RemovalOutcome = { readonly done: true } | { readonly done: false; readonly leaderNow: string };

function hostOf(addr: string): string {
  const i = addr.lastIndexOf(':');
  return i < 0 ? addr : addr.slice(0, i);
}

export class Membership {
  readonly changer: MembershipChanger;
  private reconciling = false;
  private readonly promoteLagEntries: number;
  private readonly confChangeTimeoutMs: number;

  constructor(private readonly o: MembershipOptions) {
    this.changer = new MembershipChanger(o.node);
    this.promoteLagEntries = o.promoteLagEntries ?? 100;
    this.confChangeTimeoutMs = o.confChangeTimeoutMs ?? Math.max(10 * o.electionTimeoutMs, 5000);
  }

  private get log(): Logger {
    return this.o.logger;
  }

  voters(): string[] {
    return this.o.node.status().voters.map(String);
  }

  learners(): string[] {
    return this.o.node.status().learners.map(String);
  }

  isMember(id: string): boolean {
    return this.voters().includes(id) || this.learners().includes(id);
  }

  /** A member's address: its Node object's ManagerStatus.Addr, else what the transport has. */
  addrOf(id: string): string | null {
    if (id === this.o.selfId) return this.o.selfAddr;
    return this.o.store.get('node', id)?.ManagerStatus?.Addr ?? this.o.transport.peerAddresses().get(id) ?? null;
  }

  /**
   * Heard from within two election timeouts. The leader hears every member each heartbeat; a
   * follower hears only the leader, so for the others it falls back on the Node object (what the
   * leader wrote). Raft's own recentActive flag is not used: it is cleared every election timeout
   * and would make live members flap to "unreachable".
   */
  private reachable(id: string): boolean {
    if (id === this.o.selfId) return true;
    // Two election timeouts: a live member on a loaded host must not flap to "unreachable" (and
    // make a removal refuse) because one reply came late; a dead one shows within a second or two.
    if (this.o.transport.heardFrom(id, 2 * this.o.electionTimeoutMs)) return true;
    if (this.o.node.status().role === 'leader') return false;
    return this.o.store.get('node', id)?.ManagerStatus?.Reachability === 'reachable';
  }

  members(): MemberInfo[] {
    const s = this.o.node.status();
    const leader = s.leader === null ? null : String(s.leader);
    const out: MemberInfo[] = [];
    for (const [ids, voter] of [
      [s.voters, true],
      [s.learners, false],
    ] as const) {
      for (const raw of ids) {
        const id = String(raw);
        out.push({ nodeId: id, addr: this.addrOf(id), voter, leader: id === leader, reachable: this.reachable(id) });
      }
    }
    return out;
  }

  /**
   * `nodes` with each Raft member's ManagerStatus taken from this manager's live Raft state, as
   * dockerd's node list does: Leader is the leader this manager follows now (none during an
   * election), Reachability as reachable() sees it. The stored ManagerStatus is what the leader
   * last wrote; right after a failover it still names the dead leader until the new one's
   * reconcile commits, so reads answered from it lag the election by a reconcile and a commit.
   * Nodes that are not Raft members keep what is stored.
   */
  withLiveStatus<N extends Node>(nodes: readonly N[]): N[] {
    const s = this.o.node.status();
    if (s.voters.length === 0) return [...nodes];
    const leader = s.leader === null ? null : String(s.leader);
    const members = new Set([...s.voters, ...s.learners].map(String));
    return nodes.map((n) => {
      const ms = n.ManagerStatus;
      if (ms === undefined || !members.has(n.ID)) return n;
      const isLeader = n.ID === leader;
      const reachability = isLeader || this.reachable(n.ID) ? ('reachable' as const) : ('unreachable' as const);
      if ((ms.Leader ?? false) === isLeader && ms.Reachability === reachability) return n;
      const { Leader: _stored, ...rest } = ms;
      return { ...n, ManagerStatus: { ...rest, Reachability: reachability, ...(isLeader ? { Leader: true } : {}) } };
    });
  }

  /** Periodic work; overlapping calls are skipped. */
  async reconcile(): Promise<void> {
    if (this.reconciling) return;
    this.reconciling = true;
    try {
      this.syncPeers();
      if (this.o.node.status().role === 'leader') await this.leaderDuties();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'membership reconcile did not finish');
    } finally {
      this.reconciling = false;
    }
  }

  private syncPeers(): void {
    const s = this.o.node.status();
    // A joiner that has not received the configuration yet keeps the peers its Join answer named.
    if (s.voters.length === 0) return;
    const current = this.o.transport.peerAddresses();
    const want = new Map<string, string>();
    for (const raw of [...s.voters, ...s.learners]) {
      const id = String(raw);
      if (id === this.o.selfId) continue;
      const addr = this.o.store.get('node', id)?.ManagerStatus?.Addr ?? current.get(id);
      if (addr !== undefined) want.set(id, addr);
    }
    this.o.transport.setPeers(want);
  }

  private async leaderDuties(): Promise<void> {
    const s = this.o.node.status();
    for (const raw of s.learners) {
      const id = String(raw);
      const pr = this.changer.progress(id);
      if (pr === undefined || pr.match + this.promoteLagEntries < s.commit || pr.match === 0) continue;
      this.log.info({ nodeId: id, match: pr.match, commit: s.commit }, 'learner caught up; promoting to voter');
      await this.changer.change({ type: 'addNode', nodeId: id }, this.confChangeTimeoutMs);
      return;
    }
    await this.writeManagerStatus();
  }

  /** Brings every Node object's ManagerStatus in line with Raft (written only when something changed). */
  private async writeManagerStatus(): Promise<void> {
    const store = this.o.store;
    const members = new Set([...this.voters(), ...this.learners()]);
    const changes: Node[] = [];
    for (const n of store.find('node')) {
      const ms = n.ManagerStatus;
      if (members.has(n.ID)) {
        const want = {
          Addr: ms?.Addr ?? this.addrOf(n.ID) ?? '',
          Reachability: this.reachable(n.ID) ? ('reachable' as const) : ('unreachable' as const),
          ...(n.ID === this.o.selfId ? { Leader: true } : {}),
        };
        if (ms === undefined || ms.Addr !== want.Addr || ms.Reachability !== want.Reachability || (ms.Leader ?? false) !== (want.Leader ?? false)) {
          changes.push({ ...n, ManagerStatus: want });
        }
      } else if (ms !== undefined && (ms.Reachability !== 'unreachable' || ms.Leader === true)) {
        // A manager no longer in the Raft configuration (e.g. after --force-new-cluster).
        changes.push({ ...n, ManagerStatus: { Addr: ms.Addr, Reachability: 'unreachable' } });
      }
    }
    if (changes.length === 0) return;
    await store.update((tx) => {
      for (const n of changes) {
        const cur = tx.get('node', n.ID);
        if (cur !== undefined && cur.Version.Index === n.Version.Index) tx.update('node', n);
      }
    });
  }

  /** Leader: RaftMembership.Join — record the Node, add the joiner as a learner, answer with the members. */
  async addMember(nodeId: string, addr: string): Promise<MemberInfo[]> {
    this.requireLeader();
    if (isRemoved(clusterOf(this.o.store), nodeId)) throw new ManagerError('NODE_REMOVED', `node ${nodeId} was removed from the swarm and cannot join again with that identity; join with a new token`);
    await writeWithRetry(this.o.store, (tx) => upsertManagerNode(tx, nodeId, addr));
    this.o.transport.setPeer(nodeId, addr);
    if (!this.isMember(nodeId)) {
      this.log.info({ nodeId, addr }, 'adding manager as a learner');
      await this.changer.change({ type: 'addLearner', nodeId, context: addr }, this.confChangeTimeoutMs);
    }
    return this.members();
  }

  /**
   * Throws QUORUM_AT_RISK when removing `nodeId` from the voters would leave fewer reachable
   * voters than the remaining configuration's quorum.
   */
  checkRemovalQuorum(nodeId: string): void {
    const voters = this.voters();
    if (!voters.includes(nodeId)) return;
    const remaining = voters.filter((v) => v !== nodeId);
    if (remaining.length === 0) {
      throw new ManagerError('LAST_MANAGER', `${nodeId} is the only manager: removing it would destroy the swarm's state; use --force to leave anyway`);
    }
    const reachable = remaining.filter((v) => this.reachable(v)).length;
    const quorum = Math.floor(remaining.length / 2) + 1;
    if (reachable < quorum) {
      throw new ManagerError(
        'QUORUM_AT_RISK',
        `removing manager ${nodeId} would leave ${reachable} reachable of the ${remaining.length} remaining managers, fewer than the ${quorum} a quorum needs: the swarm would stop accepting changes. Bring the unreachable managers back first, or use --force`,
      );
    }
  }

  /**
   * Leader: takes `nodeId` out of Raft and records it in the store. When it is this (leader)
   * node, leadership moves to the most up-to-date reachable voter first and the caller must
   * repeat the request on the new leader.
   */
  async removeMember(nodeId: string, action: RemovalAction, force: boolean): Promise<RemovalOutcome> {
    this.requireLeader();
    if (!this.isMember(nodeId)) throw new ManagerError('NOT_A_MEMBER', `node ${nodeId} is not a manager of this swarm`);
    if (!force) {
      try {
        this.checkRemovalQuorum(nodeId);
      } catch (err) {
        // Reachability is "heard from recently": right after this process stalled (GC, a loaded
        // host) the replies may be queued but not yet read. Look again after half an election
        // timeout of fresh heartbeats before refusing.
        if (!(err instanceof ManagerError) || err.code !== 'QUORUM_AT_RISK') throw err;
        await new Promise((r) => setTimeout(r, this.o.electionTimeoutMs / 2));
        this.requireLeader();
        this.checkRemovalQuorum(nodeId);
      }
    }
    if (nodeId === this.o.selfId) {
      const target = this.transferTarget();
      if (target === null) throw new ManagerError('QUORUM_AT_RISK', `no reachable manager can take over leadership from ${nodeId}; bring another manager back first`);
      return { done: false, leaderNow: await this.transferLeadership(target) };
    }
    this.log.info({ nodeId, action, force }, 'removing manager from raft');
    await this.changer.change({ type: 'removeNode', nodeId }, this.confChangeTimeoutMs);
    this.o.transport.removePeer(nodeId);
    await writeWithRetry(this.o.store, (tx) => recordRemoval(tx, nodeId, action));
    return { done: true };
  }

  private transferTarget(): string | null {
    let best: { id: string; match: number } | null = null;
    for (const id of this.voters()) {
      if (id === this.o.selfId) continue;
      const pr = this.changer.progress(id);
      if (pr === undefined || !this.reachable(id)) continue;
      if (best === null || pr.match > best.match) best = { id, match: pr.match };
    }
    return best?.id ?? null;
  }

  /** Transfers leadership and waits (3 election timeouts at most) until another node leads. */
  async transferLeadership(target: string): Promise<string> {
    this.log.info({ target }, 'transferring leadership');
    this.o.node.transferLeader(target);
    const deadline = performance.now() + 3 * this.o.electionTimeoutMs + 1000;
    while (performance.now() < deadline) {
      const s = this.o.node.status();
      if (s.leader !== null && String(s.leader) !== this.o.selfId) return String(s.leader);
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new ManagerError('TIMEOUT', `leadership did not move to ${target} within ${3 * this.o.electionTimeoutMs + 1000} ms; retry`);
  }

  private requireLeader(): void {
    const s = this.o.node.status();
    if (s.role === 'leader') return;
    if (s.leader === null) throw new NoLeaderError();
    throw new ManagerError('NOT_LEADER', `this manager is not the leader (the leader is ${String(s.leader)})`);
  }
}

/**
 * A store write of the membership's own bookkeeping, retried when another write of the same
 * objects (the ManagerStatus loop) committed first ("update out of sequence"): the function
 * re-reads the current objects each time.
 */
async function writeWithRetry(store: MemoryStore, fn: (tx: Tx) => void, attempts = 10): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await store.update(fn);
      return;
    } catch (err) {
      if (!(err instanceof SequenceConflictError) || i >= attempts) throw err;
    }
  }
}

export function isRemoved(cluster: ManagedCluster | undefined, nodeId: string): boolean {
  return cluster?.RemovedNodes?.some((r) => r.ID === nodeId) ?? false;
}

/** Creates or updates a manager's Node object with its address (role manager). */
export function upsertManagerNode(tx: Tx, nodeId: string, addr: string, leader = false): void {
  const cur = tx.get('node', nodeId);
  const ManagerStatus = { Addr: addr, Reachability: 'reachable' as const, ...(leader ? { Leader: true } : {}) };
  if (cur === undefined) {
    tx.create('node', {
      ID: nodeId,
      Spec: { Role: 'manager', Availability: 'active' },
      Status: { State: 'ready', Addr: hostOf(addr) },
      ManagerStatus,
    });
    return;
  }
  if (cur.Spec.Role === 'manager' && cur.ManagerStatus?.Addr === addr) return;
  tx.update('node', { ...cur, Spec: { ...cur.Spec, Role: 'manager' }, Status: { ...cur.Status, Addr: hostOf(addr) }, ManagerStatus: { ...ManagerStatus, ...(cur.ManagerStatus ?? {}), Addr: addr } });
}

function recordRemoval(tx: Tx, nodeId: string, action: RemovalAction): void {
  const cur = tx.get('node', nodeId);
  if (cur !== undefined) {
    const { ManagerStatus: _gone, ...rest } = cur;
    if (action === 'remove') tx.delete('node', nodeId);
    else tx.update('node', { ...rest, Spec: { ...cur.Spec, Role: 'worker' }, ...(action === 'leave' ? { Status: { ...cur.Status, State: 'down' as const } } : {}) });
  }
  if (action === 'demote') return;
  const cluster = clusterOf(tx);
  if (cluster === undefined || isRemoved(cluster, nodeId)) return;
  const next: ManagedCluster = { ...cluster, RemovedNodes: [...(cluster.RemovedNodes ?? []), { ID: nodeId, RemovedAt: new Date().toISOString() }] };
  tx.update('cluster', next);
}
