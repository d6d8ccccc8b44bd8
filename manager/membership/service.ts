// The RaftMembership service (Join, Leave) and Raft.ResolveAddress on a manager's cluster port.
//
// Any manager may be called; a follower forwards the call to the leader over mutual TLS and
// relays the answer. The forwarded call carries, as metadata, who it is for
// (FORWARDED_FOR_HEADER: the leader cannot see the original caller's certificate) — honoured
// only because the forwarder itself passed the manager-only authorization. Leave carries the
// operator's action and --force the same way (ACTION_HEADER, FORCE_HEADER).
// With no leader known the call fails at once with "no leader" (UNAVAILABLE).
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';

import {
  RaftMembershipClient,
  type JoinRequest,
  type JoinResponse,
  type LeaveRequest,
  type LeaveResponse,
  type RaftMembershipServer,
  type RaftServer,
} from '../../proto/gen/shoal/raft.js';
import { peerIdentity } from '../../proto/grpc/authz.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, type TlsMaterial } from '../../proto/grpc/tls.js';
import { ManagerError, NoLeaderError, managerErrorFromGrpc, toGrpcError } from '../errors.js';
import { clusterOf } from './cluster-state.js';
import type { MemberInfo, Membership, RemovalAction } from './membership.js';
import type { MemoryStore } from '../store/index.js';
import type { RaftNode } from '../../raft/node.js';

export const FORWARDED_FOR_HEADER = 'shoal-forwarded-for';
export const ACTION_HEADER = 'shoal-membership-action';
export const FORCE_HEADER = 'shoal-force';
export const MEMBERSHIP_CALL_TIMEOUT_MS = 30_000;

export interface MembershipServiceOptions {
  readonly selfId: string;
  readonly clusterId: string;
  readonly material: () => TlsMaterial;
  readonly node: RaftNode;
  readonly store: MemoryStore;
  readonly membership: Membership;
  readonly logger: Logger;
}

function membersToProto(members: readonly MemberInfo[]): JoinResponse['members'] {
  return members.map((m) => ({ raftId: m.nodeId, nodeId: m.nodeId, addr: m.addr ?? '' }));
}

function first(md: grpc.Metadata, key: string): string | null {
  const v = md.get(key)[0];
  return typeof v === 'string' && v !== '' ? v : null;
}

function parseAction(v: string | null): RemovalAction {
  return v === 'demote' || v === 'remove' ? v : 'leave';
}

/** A client-side call on RaftMembership with metadata and a deadline. */
export function callMembership<Req, Res>(
  addr: string,
  material: TlsMaterial,
  clusterId: string,
  method: 'join' | 'leave',
  request: Req,
  metadata: grpc.Metadata,
  timeoutMs = MEMBERSHIP_CALL_TIMEOUT_MS,
): Promise<Res> {
  const client = new RaftMembershipClient(addr, clusterChannelCredentials(material, clusterId), CLUSTER_CHANNEL_OPTIONS);
  return new Promise<Res>((resolve, reject) => {
    const fn = client[method].bind(client) as unknown as (r: Req, m: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, res: Res) => void) => void;
    fn(request, metadata, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}

export class LeaderRouter {
  constructor(private readonly o: MembershipServiceOptions) {}

  /** null when this node leads; the leader's ID and address otherwise; NoLeaderError when none is known. */
  leader(): { id: string; addr: string } | null {
    const s = this.o.node.status();
    if (s.role === 'leader') return null;
    if (s.leader === null) throw new NoLeaderError();
    const id = String(s.leader);
    const addr = this.o.membership.addrOf(id);
    if (addr === null) throw new NoLeaderError(`the leader ${id}'s address is not known here yet`);
    return { id, addr };
  }

  async forward<Req, Res>(addr: string, method: 'join' | 'leave', request: Req, metadata: grpc.Metadata): Promise<Res> {
    try {
      return await callMembership<Req, Res>(addr, this.o.material(), this.o.clusterId, method, request, metadata);
    } catch (err) {
      throw managerErrorFromGrpc(err as grpc.ServiceError);
    }
  }
}

export function raftMembershipService(o: MembershipServiceOptions): RaftMembershipServer {
  const router = new LeaderRouter(o);
  const log = o.logger;
  return {
    join: (call: grpc.ServerUnaryCall<JoinRequest, JoinResponse>, callback: grpc.sendUnaryData<JoinResponse>) => {
      const caller = peerIdentity(call);
      const joiner = first(call.metadata, FORWARDED_FOR_HEADER) ?? caller?.nodeId ?? null;
      if (joiner === null || call.request.addr === '') {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: 'Join needs a caller certificate and the address other managers reach the joiner at' });
        return;
      }
      void (async (): Promise<JoinResponse> => {
        const leader = router.leader();
        if (leader !== null) {
          const md = new grpc.Metadata();
          md.set(FORWARDED_FOR_HEADER, joiner);
          log.info({ joiner, leader: leader.id }, 'forwarding Join to the leader');
          return router.forward<JoinRequest, JoinResponse>(leader.addr, 'join', call.request, md);
        }
        const members = await o.membership.addMember(joiner, call.request.addr);
        return { raftId: joiner, members: membersToProto(members), removedRaftIds: (clusterOf(o.store)?.RemovedNodes ?? []).map((r) => r.ID) };
      })().then(
        (res) => callback(null, res),
        (err: unknown) => {
          log.warn({ joiner, err: (err as Error).message }, 'Join failed');
          callback(toGrpcError(err));
        },
      );
    },

    leave: (call: grpc.ServerUnaryCall<LeaveRequest, LeaveResponse>, callback: grpc.sendUnaryData<LeaveResponse>) => {
      const caller = peerIdentity(call);
      const target = call.request.node?.raftId || caller?.nodeId || '';
      const action = parseAction(first(call.metadata, ACTION_HEADER));
      const force = first(call.metadata, FORCE_HEADER) === '1';
      void (async (): Promise<void> => {
        // A leader that is itself the target hands leadership over, then the new leader does it.
        for (let hop = 0; hop < 3; hop++) {
          const leader = router.leader();
          if (leader !== null) {
            await router.forward<LeaveRequest, LeaveResponse>(leader.addr, 'leave', { node: { raftId: target, nodeId: target, addr: '' } }, leaveMetadata(action, force));
            return;
          }
          const outcome = await o.membership.removeMember(target, action, force);
          if (outcome.done) return;
        }
        throw new ManagerError('TIMEOUT', `could not ${action} ${target}: leadership kept moving`);
      })().then(
        () => callback(null, {}),
        (err: unknown) => {
          log.warn({ target, action, err: (err as Error).message }, 'Leave failed');
          callback(toGrpcError(err));
        },
      );
    },
  };
}

export function leaveMetadata(action: RemovalAction, force: boolean): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(ACTION_HEADER, action);
  if (force) md.set(FORCE_HEADER, '1');
  return md;
}

/** Raft.ResolveAddress: a member's address from the store / transport. */
export function resolveAddressHandler(membership: Membership): RaftServer['resolveAddress'] {
  return (call, callback) => {
    const addr = membership.addrOf(call.request.raftId);
    if (addr === null) callback({ code: grpc.status.NOT_FOUND, details: `no address known for raft member ${call.request.raftId}` });
    else callback(null, { addr });
  };
}
