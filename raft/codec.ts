// Binary encoding of the data that crosses the Raft core's boundary: entries, hard state,
// snapshots and messages. Used by the transport (frames on the wire) and by durable storage
// (records on disk), so decoding treats its input as hostile: every length is checked against
// what is left, every tag against what exists, and anything else throws a CodecError — a
// decoder never hands back a half-read value.
//
// Layout (all integers are unsigned LEB128 varints in canonical, shortest form, ≤ 2^53-1):
//   top level   := VERSION(1 byte) kind-specific body, and nothing after it
//   message     := type(1) from:NodeId to:NodeId term:uv  per-type fields (see encodeBody)
//   entry       := term:uv index:uv type(1: 0 normal, 1 conf) data:bytes
//   hardState   := term:uv vote:NodeId? commit:uv
//   snapshot    := index:uv term:uv voters:list<NodeId> learners:list<NodeId> data:bytes
//   NodeId      := tag(1) then: 1 → uv (non-negative safe integer) | 2 → float64 LE (any other
//                  finite number) | 3 → string;  tag 0 means null where a NodeId is optional
//   bytes/string:= length:uv then raw bytes (strings: well-formed UTF-8)
//   bool        := one byte, 0 or 1
import type { ConfState, Entry, EntryType, HardState, Message, NodeId, Snapshot } from './types.js';

/** Format version written as the first byte of every top-level encoding. */
export const CODEC_VERSION = 1;

export class CodecError extends Error {
  readonly code = 'ERR_RAFT_CODEC';
  constructor(
    message: string,
    /** Byte offset in the input where decoding failed; -1 when encoding. */
    readonly offset: number = -1,
  ) {
    super(offset >= 0 ? `raft codec: ${message} (at byte ${offset})` : `raft codec: ${message}`);
    this.name = 'CodecError';
  }
}

const MESSAGE_TYPES = [
  'app',
  'appResp',
  'vote',
  'preVote',
  'voteResp',
  'preVoteResp',
  'heartbeat',
  'heartbeatResp',
  'snap',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
  'transferLeader',
] as const satisfies readonly Message['type'][];

type Tag = (typeof MESSAGE_TYPES)[number];
const TYPE_CODE = new Map<string, number>(MESSAGE_TYPES.map((t, i) => [t, i + 1]));

const ID_NULL = 0;
const ID_UINT = 1;
const ID_FLOAT = 2;
const ID_STRING = 3;

const ENTRY_NORMAL = 0;
const ENTRY_CONF = 1;

// ---------------------------------------------------------------------------------------------
// Sizing (encoding computes the exact size first, then writes into one allocation).

function uvSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  v = Math.floor(v / 0x10000000);
  while (v > 0) {
    n++;
    v = Math.floor(v / 0x80);
  }
  return n;
}

function checkUint(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new CodecError(`${what} must be a non-negative safe integer, got ${String(v)}`);
  }
}

function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

function strSize(s: string, what: string): number {
  if (typeof s !== 'string') throw new CodecError(`${what} must be a string, got ${typeof s}`);
  if (!isWellFormed(s)) throw new CodecError(`${what} contains a lone surrogate and cannot be encoded as UTF-8`);
  const n = Buffer.byteLength(s, 'utf8');
  return uvSize(n) + n;
}

function bytesSize(b: Uint8Array, what: string): number {
  if (!(b instanceof Uint8Array)) throw new CodecError(`${what} must be a Uint8Array`);
  return uvSize(b.byteLength) + b.byteLength;
}

function isUintId(id: number): boolean {
  return Number.isSafeInteger(id) && id >= 0 && !Object.is(id, -0);
}

function idSize(id: NodeId | null, what: string): number {
  if (id === null) return 1;
  if (typeof id === 'number') {
    if (isUintId(id)) return 1 + uvSize(id);
    if (!Number.isFinite(id)) throw new CodecError(`${what} must be a finite number or a string, got ${id}`);
    return 9;
  }
  return 1 + strSize(id, what);
}

function entrySize(e: Entry): number {
  checkUint(e.term, 'entry term');
  checkUint(e.index, 'entry index');
  if (e.type !== 'normal' && e.type !== 'conf') throw new CodecError(`entry type must be normal or conf, got ${String(e.type)}`);
  return uvSize(e.term) + uvSize(e.index) + 1 + bytesSize(e.data, 'entry data');
}

function idListSize(ids: readonly NodeId[], what: string): number {
  let n = uvSize(ids.length);
  for (const id of ids) n += idSize(id, what);
  return n;
}

function snapshotSize(s: Snapshot): number {
  const m = s.metadata;
  checkUint(m.index, 'snapshot index');
  checkUint(m.term, 'snapshot term');
  return (
    uvSize(m.index) +
    uvSize(m.term) +
    idListSize(m.confState.voters, 'snapshot voter') +
    idListSize(m.confState.learners, 'snapshot learner') +
    bytesSize(s.data, 'snapshot data')
  );
}

function hardStateSize(h: HardState): number {
  checkUint(h.term, 'hard state term');
  checkUint(h.commit, 'hard state commit');
  return uvSize(h.term) + idSize(h.vote, 'hard state vote') + uvSize(h.commit);
}

function nullableStrSize(s: string | null, what: string): number {
  return s === null ? 1 : 1 + strSize(s, what);
}

function messageSize(m: Message): number {
  if (m.from === null || m.to === null) throw new CodecError(`message ${m.type}: from and to must be node ids`);
  checkUint(m.term, `message ${m.type} term`);
  let n = 1 + idSize(m.from, 'message from') + idSize(m.to, 'message to') + uvSize(m.term);
  switch (m.type) {
    case 'app':
      checkUint(m.index, 'app index');
      checkUint(m.logTerm, 'app logTerm');
      checkUint(m.commit, 'app commit');
      n += uvSize(m.index) + uvSize(m.logTerm) + uvSize(m.commit) + uvSize(m.entries.length);
      for (const e of m.entries) n += entrySize(e);
      return n;
    case 'appResp':
      checkUint(m.index, 'appResp index');
      checkUint(m.rejectHint, 'appResp rejectHint');
      checkUint(m.logTerm, 'appResp logTerm');
      return n + uvSize(m.index) + 1 + uvSize(m.rejectHint) + uvSize(m.logTerm);
    case 'vote':
    case 'preVote':
      checkUint(m.index, `${m.type} index`);
      checkUint(m.logTerm, `${m.type} logTerm`);
      return n + uvSize(m.index) + uvSize(m.logTerm) + 1;
    case 'voteResp':
    case 'preVoteResp':
      return n + 1;
    case 'heartbeat':
      checkUint(m.commit, 'heartbeat commit');
      return n + uvSize(m.commit) + nullableStrSize(m.context, 'heartbeat context');
    case 'heartbeatResp':
      return n + nullableStrSize(m.context, 'heartbeatResp context');
    case 'snap':
      return n + snapshotSize(m.snapshot);
    case 'timeoutNow':
      return n;
    case 'readIndex':
      return n + strSize(m.context, 'readIndex context');
    case 'readIndexResp':
      checkUint(m.index, 'readIndexResp index');
      return n + strSize(m.context, 'readIndexResp context') + uvSize(m.index) + 1;
    case 'transferLeader':
      return n + idSize(m.target, 'transferLeader target');
    default:
      throw new CodecError(`unknown message type ${String((m as { type: unknown }).type)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing.

class Writer {
  readonly buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  uv(v: number): void {
    const b = this.buf;
    let p = this.pos;
    // Bit operations are exact only below 2^31; above it divide.
    while (v >= 0x80000000) {
      b[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    while (v >= 0x80) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  bytes(d: Uint8Array): void {
    this.uv(d.byteLength);
    this.buf.set(d, this.pos);
    this.pos += d.byteLength;
  }

  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.uv(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  id(id: NodeId | null): void {
    if (id === null) {
      this.u8(ID_NULL);
    } else if (typeof id === 'number') {
      if (isUintId(id)) {
        this.u8(ID_UINT);
        this.uv(id);
      } else {
        this.u8(ID_FLOAT);
        this.buf.writeDoubleLE(id, this.pos);
        this.pos += 8;
      }
    } else {
      this.u8(ID_STRING);
      this.str(id);
    }
  }

  ids(ids: readonly NodeId[]): void {
    this.uv(ids.length);
    for (const id of ids) this.id(id);
  }

  nullableStr(s: string | null): void {
    if (s === null) {
      this.u8(0);
    } else {
      this.u8(1);
      this.str(s);
    }
  }

  entry(e: Entry): void {
    this.uv(e.term);
    this.uv(e.index);
    this.u8(e.type === 'conf' ? ENTRY_CONF : ENTRY_NORMAL);
    this.bytes(e.data);
  }

  snapshot(s: Snapshot): void {
    this.uv(s.metadata.index);
    this.uv(s.metadata.term);
    this.ids(s.metadata.confState.voters);
    this.ids(s.metadata.confState.learners);
    this.bytes(s.data);
  }

  hardState(h: HardState): void {
    this.uv(h.term);
    this.id(h.vote);
    this.uv(h.commit);
  }

  message(m: Message): void {
    this.u8(TYPE_CODE.get(m.type)!);
    this.id(m.from);
    this.id(m.to);
    this.uv(m.term);
    switch (m.type) {
      case 'app':
        this.uv(m.index);
        this.uv(m.logTerm);
        this.uv(m.commit);
        this.uv(m.entries.length);
        for (const e of m.entries) this.entry(e);
        return;
      case 'appResp':
        this.uv(m.index);
        this.bool(m.reject);
        this.uv(m.rejectHint);
        this.uv(m.logTerm);
        return;
      case 'vote':
      case 'preVote':
        this.uv(m.index);
        this.uv(m.logTerm);
        this.bool(m.transfer);
        return;
      case 'voteResp':
      case 'preVoteResp':
        this.bool(m.reject);
        return;
      case 'heartbeat':
        this.uv(m.commit);
        this.nullableStr(m.context);
        return;
      case 'heartbeatResp':
        this.nullableStr(m.context);
        return;
      case 'snap':
        this.snapshot(m.snapshot);
        return;
      case 'timeoutNow':
        return;
      case 'readIndex':
        this.str(m.context);
        return;
      case 'readIndexResp':
        this.str(m.context);
        this.uv(m.index);
        this.bool(m.reject);
        return;
      case 'transferLeader':
        this.id(m.target);
        return;
    }
  }

  done(what: string): Uint8Array {
    if (this.pos !== this.buf.byteLength) {
      // Sizing and writing disagree: a bug here, never the caller's input.
      throw new CodecError(`internal: ${what} wrote ${this.pos} bytes, sized ${this.buf.byteLength}`);
    }
    return this.buf;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading.

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  private readonly b: Buffer;
  private owned: Uint8Array | null = null;
  pos = 0;
  constructor(input: Uint8Array, readonly what: string) {
    if (!(input instanceof Uint8Array)) throw new CodecError(`${what}: input must be a Uint8Array`);
    this.b = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }

  fail(msg: string, at: number = this.pos): never {
    throw new CodecError(`${this.what}: ${msg}`, at);
  }

  private need(n: number, field: string): void {
    if (this.b.byteLength - this.pos < n) {
      this.fail(`truncated: ${field} needs ${n} byte(s), ${this.b.byteLength - this.pos} left`);
    }
  }

  remaining(): number {
    return this.b.byteLength - this.pos;
  }

  u8(field: string): number {
    this.need(1, field);
    return this.b[this.pos++]!;
  }

  uv(field: string): number {
    const b = this.b;
    const start = this.pos;
    const end = b.byteLength;
    let p = start;
    if (p < end && b[p]! < 0x80) {
      this.pos = p + 1;
      return b[p]!;
    }
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (p >= end) this.fail(`truncated varint in ${field}`, start);
      const byte = b[p++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        if (byte === 0 && i > 0) this.fail(`non-canonical varint in ${field}`, start);
        if (v > Number.MAX_SAFE_INTEGER) this.fail(`${field} exceeds 2^53-1`, start);
        this.pos = p;
        return v;
      }
      mul *= 0x80;
    }
    return this.fail(`varint in ${field} is longer than 8 bytes`, start);
  }

  bool(field: string): boolean {
    const at = this.pos;
    const v = this.u8(field);
    if (v > 1) this.fail(`${field} must be 0 or 1, got ${v}`, at);
    return v === 1;
  }

  bytes(field: string): Uint8Array {
    const n = this.uv(`${field} length`);
    this.need(n, field);
    // Decoded values must not alias the caller's buffer (a transport may reuse it), but one
    // allocation per entry costs ~1µs in Node: copy the whole input once, on the first byte
    // field, and hand out views of that private copy.
    if (this.owned === null) this.owned = new Uint8Array(this.b);
    const out = this.owned.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  str(field: string): string {
    const n = this.uv(`${field} length`);
    this.need(n, field);
    const at = this.pos;
    this.pos += n;
    try {
      return utf8.decode(this.b.subarray(at, at + n));
    } catch {
      return this.fail(`${field} is not valid UTF-8`, at);
    }
  }

  nullableStr(field: string): string | null {
    const at = this.pos;
    const tag = this.u8(field);
    if (tag === 0) return null;
    if (tag !== 1) this.fail(`${field} presence byte must be 0 or 1, got ${tag}`, at);
    return this.str(field);
  }

  nullableId(field: string): NodeId | null {
    const at = this.pos;
    const tag = this.u8(field);
    switch (tag) {
      case ID_NULL:
        return null;
      case ID_UINT:
        return this.uv(field);
      case ID_FLOAT: {
        this.need(8, field);
        const v = this.b.readDoubleLE(this.pos);
        if (!Number.isFinite(v) || isUintId(v)) this.fail(`${field} float64 id ${v} is not in canonical form`, at);
        this.pos += 8;
        return v;
      }
      case ID_STRING:
        return this.str(field);
      default:
        return this.fail(`${field} has unknown node id tag ${tag}`, at);
    }
  }

  id(field: string): NodeId {
    const at = this.pos;
    const id = this.nullableId(field);
    if (id === null) this.fail(`${field} is null but a node id is required`, at);
    return id;
  }

  ids(field: string): NodeId[] {
    const n = this.uv(`${field} count`);
    // Each id takes at least two bytes: refuse counts the input cannot hold before looping.
    if (n * 2 > this.remaining()) this.fail(`${field} count ${n} exceeds the bytes left`);
    const out: NodeId[] = new Array<NodeId>(n);
    for (let i = 0; i < n; i++) out[i] = this.id(field);
    return out;
  }

  entry(): Entry {
    const term = this.uv('entry term');
    const index = this.uv('entry index');
    const at = this.pos;
    const t = this.u8('entry type');
    let type: EntryType;
    if (t === ENTRY_NORMAL) type = 'normal';
    else if (t === ENTRY_CONF) type = 'conf';
    else return this.fail(`unknown entry type ${t}`, at);
    return { term, index, type, data: this.bytes('entry data') };
  }

  confState(): ConfState {
    const voters = this.ids('snapshot voters');
    const learners = this.ids('snapshot learners');
    return { voters, learners };
  }

  snapshot(): Snapshot {
    const index = this.uv('snapshot index');
    const term = this.uv('snapshot term');
    const confState = this.confState();
    return { metadata: { index, term, confState }, data: this.bytes('snapshot data') };
  }

  hardState(): HardState {
    const term = this.uv('hard state term');
    const vote = this.nullableId('hard state vote');
    const commit = this.uv('hard state commit');
    return { term, vote, commit };
  }

  message(): Message {
    const at = this.pos;
    const code = this.u8('message type');
    const type: Tag | undefined = MESSAGE_TYPES[code - 1];
    if (type === undefined) return this.fail(`unknown message type code ${code}`, at);
    const from = this.id('message from');
    const to = this.id('message to');
    const term = this.uv('message term');
    switch (type) {
      case 'app': {
        const index = this.uv('app index');
        const logTerm = this.uv('app logTerm');
        const commit = this.uv('app commit');
        const n = this.uv('app entry count');
        // An entry takes at least 4 bytes.
        if (n * 4 > this.remaining()) this.fail(`app entry count ${n} exceeds the bytes left`);
        const entries: Entry[] = new Array<Entry>(n);
        for (let i = 0; i < n; i++) entries[i] = this.entry();
        return { type, from, to, term, index, logTerm, commit, entries };
      }
      case 'appResp': {
        const index = this.uv('appResp index');
        const reject = this.bool('appResp reject');
        const rejectHint = this.uv('appResp rejectHint');
        const logTerm = this.uv('appResp logTerm');
        return { type, from, to, term, index, reject, rejectHint, logTerm };
      }
      case 'vote':
      case 'preVote': {
        const index = this.uv(`${type} index`);
        const logTerm = this.uv(`${type} logTerm`);
        const transfer = this.bool(`${type} transfer`);
        return { type, from, to, term, index, logTerm, transfer };
      }
      case 'voteResp':
      case 'preVoteResp':
        return { type, from, to, term, reject: this.bool(`${type} reject`) };
      case 'heartbeat': {
        const commit = this.uv('heartbeat commit');
        const context = this.nullableStr('heartbeat context');
        return { type, from, to, term, commit, context };
      }
      case 'heartbeatResp':
        return { type, from, to, term, context: this.nullableStr('heartbeatResp context') };
      case 'snap':
        return { type, from, to, term, snapshot: this.snapshot() };
      case 'timeoutNow':
        return { type, from, to, term };
      case 'readIndex':
        return { type, from, to, term, context: this.str('readIndex context') };
      case 'readIndexResp': {
        const context = this.str('readIndexResp context');
        const index = this.uv('readIndexResp index');
        const reject = this.bool('readIndexResp reject');
        return { type, from, to, term, context, index, reject };
      }
      case 'transferLeader':
        return { type, from, to, term, target: this.id('transferLeader target') };
    }
  }

  version(): void {
    const at = this.pos;
    const v = this.u8('version');
    if (v !== CODEC_VERSION) this.fail(`unsupported format version ${v} (this build reads ${CODEC_VERSION})`, at);
  }

  end(): void {
    if (this.pos !== this.b.byteLength) this.fail(`${this.b.byteLength - this.pos} unexpected trailing byte(s)`);
  }
}

function decodeTop<T>(b: Uint8Array, what: string, body: (r: Reader) => T): T {
  const r = new Reader(b, what);
  r.version();
  const v = body(r);
  r.end();
  return v;
}

// ---------------------------------------------------------------------------------------------
// Public API.

export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer(1 + messageSize(m));
  w.u8(CODEC_VERSION);
  w.message(m);
  return w.done('message');
}

export function decodeMessage(b: Uint8Array): Message {
  return decodeTop(b, 'message', (r) => r.message());
}

export function encodeEntry(e: Entry): Uint8Array {
  const w = new Writer(1 + entrySize(e));
  w.u8(CODEC_VERSION);
  w.entry(e);
  return w.done('entry');
}

export function decodeEntry(b: Uint8Array): Entry {
  return decodeTop(b, 'entry', (r) => r.entry());
}

export function encodeHardState(h: HardState): Uint8Array {
  const w = new Writer(1 + hardStateSize(h));
  w.u8(CODEC_VERSION);
  w.hardState(h);
  return w.done('hard state');
}

export function decodeHardState(b: Uint8Array): HardState {
  return decodeTop(b, 'hard state', (r) => r.hardState());
}

export function encodeSnapshot(s: Snapshot): Uint8Array {
  const w = new Writer(1 + snapshotSize(s));
  w.u8(CODEC_VERSION);
  w.snapshot(s);
  return w.done('snapshot');
}

export function decodeSnapshot(b: Uint8Array): Snapshot {
  return decodeTop(b, 'snapshot', (r) => r.snapshot());
}
