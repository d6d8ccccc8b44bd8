// Field-by-field conversion between raft/types.ts messages and proto/shoal/raft.proto's flat
// RaftMessage (like etcd's raftpb.Message). Node IDs travel as strings: the gRPC transport is
// for managers, whose Raft IDs are their node IDs. A MsgSnap's data never rides in the message:
// the transport sends it as SnapshotChunk items after the header (`snapshotSizeBytes` says how
// many bytes to expect).
import { EntryType as ProtoEntryType, MessageType as ProtoType, type Entry as ProtoEntry, type RaftMessage } from '../../proto/gen/shoal/raft.js';
import type { Entry, Message, MsgSnap, NodeId } from '../types.js';

export class MessageConversionError extends Error {
  readonly code = 'ERR_RAFT_GRPC_MESSAGE';
}

const TO_PROTO: Readonly<Record<Message['type'], ProtoType>> = {
  app: ProtoType.MESSAGE_TYPE_APP,
  appResp: ProtoType.MESSAGE_TYPE_APP_RESP,
  vote: ProtoType.MESSAGE_TYPE_VOTE,
  voteResp: ProtoType.MESSAGE_TYPE_VOTE_RESP,
  preVote: ProtoType.MESSAGE_TYPE_PRE_VOTE,
  preVoteResp: ProtoType.MESSAGE_TYPE_PRE_VOTE_RESP,
  heartbeat: ProtoType.MESSAGE_TYPE_HEARTBEAT,
  heartbeatResp: ProtoType.MESSAGE_TYPE_HEARTBEAT_RESP,
  snap: ProtoType.MESSAGE_TYPE_SNAP,
  timeoutNow: ProtoType.MESSAGE_TYPE_TIMEOUT_NOW,
  readIndex: ProtoType.MESSAGE_TYPE_READ_INDEX,
  readIndexResp: ProtoType.MESSAGE_TYPE_READ_INDEX_RESP,
  transferLeader: ProtoType.MESSAGE_TYPE_TRANSFER_LEADER,
};

function blank(m: Message): RaftMessage {
  return {
    type: TO_PROTO[m.type],
    from: String(m.from),
    to: String(m.to),
    term: m.term,
    index: 0,
    logTerm: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    transfer: false,
    context: '',
    hasContext: false,
    target: '',
    snapshot: undefined,
    snapshotSizeBytes: 0,
  };
}

function entryToProto(e: Entry): ProtoEntry {
  return { term: e.term, index: e.index, type: e.type === 'conf' ? ProtoEntryType.ENTRY_TYPE_CONF : ProtoEntryType.ENTRY_TYPE_NORMAL, data: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength) };
}

function entryFromProto(e: ProtoEntry): Entry {
  if (e.type !== ProtoEntryType.ENTRY_TYPE_NORMAL && e.type !== ProtoEntryType.ENTRY_TYPE_CONF) throw new MessageConversionError(`unknown entry type ${e.type}`);
  return { term: e.term, index: e.index, type: e.type === ProtoEntryType.ENTRY_TYPE_CONF ? 'conf' : 'normal', data: new Uint8Array(e.data) };
}

/** The proto form of `m`; for MsgSnap the header only (the data goes in chunks). */
export function messageToProto(m: Message): RaftMessage {
  const p = blank(m);
  switch (m.type) {
    case 'app':
      return { ...p, index: m.index, logTerm: m.logTerm, entries: m.entries.map(entryToProto), commit: m.commit };
    case 'appResp':
      return { ...p, index: m.index, reject: m.reject, rejectHint: m.rejectHint, logTerm: m.logTerm };
    case 'vote':
    case 'preVote':
      return { ...p, index: m.index, logTerm: m.logTerm, transfer: m.transfer };
    case 'voteResp':
    case 'preVoteResp':
      return { ...p, reject: m.reject };
    case 'heartbeat':
      return { ...p, commit: m.commit, context: m.context ?? '', hasContext: m.context !== null };
    case 'heartbeatResp':
      return { ...p, context: m.context ?? '', hasContext: m.context !== null };
    case 'snap': {
      const md = m.snapshot.metadata;
      return {
        ...p,
        snapshot: { index: md.index, term: md.term, confState: { voters: md.confState.voters.map(String), learners: md.confState.learners.map(String) } },
        snapshotSizeBytes: m.snapshot.data.byteLength,
      };
    }
    case 'timeoutNow':
      return p;
    case 'readIndex':
      return { ...p, context: m.context, hasContext: true };
    case 'readIndexResp':
      return { ...p, context: m.context, hasContext: true, index: m.index, reject: m.reject };
    case 'transferLeader':
      return { ...p, target: String(m.target) };
  }
}

/** A raft message from its proto form; a MsgSnap gets `data` (reassembled from its chunks by the caller). */
export function messageFromProto(p: RaftMessage, snapshotData?: Uint8Array): Message {
  const base: { from: NodeId; to: NodeId; term: number } = { from: p.from, to: p.to, term: p.term };
  const ctx = p.hasContext ? p.context : null;
  switch (p.type) {
    case ProtoType.MESSAGE_TYPE_APP:
      return { ...base, type: 'app', index: p.index, logTerm: p.logTerm, entries: p.entries.map(entryFromProto), commit: p.commit };
    case ProtoType.MESSAGE_TYPE_APP_RESP:
      return { ...base, type: 'appResp', index: p.index, reject: p.reject, rejectHint: p.rejectHint, logTerm: p.logTerm };
    case ProtoType.MESSAGE_TYPE_VOTE:
      return { ...base, type: 'vote', index: p.index, logTerm: p.logTerm, transfer: p.transfer };
    case ProtoType.MESSAGE_TYPE_PRE_VOTE:
      return { ...base, type: 'preVote', index: p.index, logTerm: p.logTerm, transfer: p.transfer };
    case ProtoType.MESSAGE_TYPE_VOTE_RESP:
      return { ...base, type: 'voteResp', reject: p.reject };
    case ProtoType.MESSAGE_TYPE_PRE_VOTE_RESP:
      return { ...base, type: 'preVoteResp', reject: p.reject };
    case ProtoType.MESSAGE_TYPE_HEARTBEAT:
      return { ...base, type: 'heartbeat', commit: p.commit, context: ctx };
    case ProtoType.MESSAGE_TYPE_HEARTBEAT_RESP:
      return { ...base, type: 'heartbeatResp', context: ctx };
    case ProtoType.MESSAGE_TYPE_SNAP: {
      const md = p.snapshot;
      if (md === undefined) throw new MessageConversionError('snapshot message without metadata');
      const snap: MsgSnap['snapshot'] = {
        metadata: { index: md.index, term: md.term, confState: { voters: md.confState?.voters ?? [], learners: md.confState?.learners ?? [] } },
        data: snapshotData ?? new Uint8Array(0),
      };
      return { ...base, type: 'snap', snapshot: snap };
    }
    case ProtoType.MESSAGE_TYPE_TIMEOUT_NOW:
      return { ...base, type: 'timeoutNow' };
    case ProtoType.MESSAGE_TYPE_READ_INDEX:
      return { ...base, type: 'readIndex', context: p.context };
    case ProtoType.MESSAGE_TYPE_READ_INDEX_RESP:
      return { ...base, type: 'readIndexResp', context: p.context, index: p.index, reject: p.reject };
    case ProtoType.MESSAGE_TYPE_TRANSFER_LEADER:
      return { ...base, type: 'transferLeader', target: p.target };
    default:
      throw new MessageConversionError(`unknown message type ${p.type}`);
  }
}
