// Membership changes through the RaftNode driver: one at a time, waiting until the change is
// applied here and the membership shows it.
import type { RaftNode } from '../../raft/node.js';
import type { ProgressStatus } from '../../raft/raft.js';
import type { ConfChange, NodeId } from '../../raft/types.js';
import { ManagerError, NoLeaderError } from '../errors.js';

export class ConfChangeRefusedError extends ManagerError {
  constructor(readonly reason: string, what: string) {
    super(
      reason === 'notLeader' ? 'NOT_LEADER' : 'TIMEOUT',
      reason === 'confChangePending'
        ? `${what}: another membership change is still being applied; retry shortly`
        : `${what}: refused by Raft (${reason})`,
    );
  }
}

export class MembershipChanger {
  constructor(private readonly node: RaftNode) {}

  /** The leader's view of a member's replication; undefined on followers. */
  progress(id: NodeId): ProgressStatus | undefined {
    return this.node.progress(id);
  }

  /**
   * Proposes `cc` and resolves once it is applied here (the core applies configuration changes
   * when their entry is handed out committed) and the membership reflects it.
   */
  async change(cc: ConfChange, timeoutMs: number): Promise<void> {
    const what = `${cc.type} ${String(cc.nodeId)}`;
    const deadline = performance.now() + timeoutMs;
    // One membership change at a time (Raft's rule): concurrent joins, and a join racing the
    // promotion loop, wait their turn here — bounded by the same deadline.
    let r = this.node.proposeConfChange(cc);
    while (!r.ok && r.reason === 'confChangePending' && performance.now() < deadline) {
      await new Promise((res) => setTimeout(res, 20));
      r = this.node.proposeConfChange(cc);
    }
    if (!r.ok) {
      if (r.reason === 'notLeader' && r.leaderHint === null) throw new NoLeaderError(`cannot ${what}`);
      throw new ConfChangeRefusedError(r.reason, what);
    }
    const index = r.index;
    for (;;) {
      const s = this.node.status();
      if (this.node.applied >= index && s.applied >= index) {
        const id = String(cc.nodeId);
        const voter = s.voters.map(String).includes(id);
        const learner = s.learners.map(String).includes(id);
        const done = cc.type === 'addNode' ? voter : cc.type === 'addLearner' ? learner || voter : !voter && !learner;
        if (done) return;
        throw new ManagerError('TIMEOUT', `${what}: the entry at index ${index} was applied but the membership does not show it (overwritten by a new leader?); retry`);
      }
      if (performance.now() > deadline) throw new ManagerError('TIMEOUT', `${what}: not committed within ${timeoutMs} ms (a quorum may be unreachable); its outcome is unknown`);
      await new Promise((res) => setTimeout(res, 10));
    }
  }
}
