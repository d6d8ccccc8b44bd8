import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CODEC_VERSION,
  CodecError,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
} from './codec.js';
import type { Entry, HardState, Message, NodeId, Snapshot } from './types.js';

// Raft numbers span the whole safe-integer range; bias towards the varint byte boundaries.
const uint = fc.oneof(
  fc.integer({ min: 0, max: 300 }),
  fc.constantFrom(127, 128, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1),
  fc.maxSafeNat(),
);
const nodeId: fc.Arbitrary<NodeId> = fc.oneof(
  fc.maxSafeNat(),
  fc.integer({ min: 1, max: 9 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.string({ maxLength: 12 }),
);
const str = fc.string({ unit: 'binary', maxLength: 40 });
const bytes = fc.uint8Array({ maxLength: 300 });

const entry: fc.Arbitrary<Entry> = fc.record({
  term: uint,
  index: uint,
  type: fc.constantFrom('normal' as const, 'conf' as const),
  data: bytes,
});
const hardState: fc.Arbitrary<HardState> = fc.record({ term: uint, vote: fc.option(nodeId, { nil: null }), commit: uint });
const snapshot: fc.Arbitrary<Snapshot> = fc.record({
  metadata: fc.record({
    index: uint,
    term: uint,
    confState: fc.record({ voters: fc.array(nodeId, { maxLength: 7 }), learners: fc.array(nodeId, { maxLength: 4 }) }),
  }),
  data: fc.uint8Array({ maxLength: 2000 }),
});

const base = { from: nodeId, to: nodeId, term: uint };
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ ...base, type: fc.constant('app' as const), index: uint, logTerm: uint, commit: uint, entries: fc.array(entry, { maxLength: 8 }) }),
  fc.record({ ...base, type: fc.constant('appResp' as const), index: uint, reject: fc.boolean(), rejectHint: uint, logTerm: uint }),
  fc.record({ ...base, type: fc.constantFrom('vote' as const, 'preVote' as const), index: uint, logTerm: uint, transfer: fc.boolean() }),
  fc.record({ ...base, type: fc.constantFrom('voteResp' as const, 'preVoteResp' as const), reject: fc.boolean() }),
  fc.record({ ...base, type: fc.constant('heartbeat' as const), commit: uint, context: fc.option(str, { nil: null }) }),
  fc.record({ ...base, type: fc.constant('heartbeatResp' as const), context: fc.option(str, { nil: null }) }),
  fc.record({ ...base, type: fc.constant('snap' as const), snapshot }),
  fc.record({ ...base, type: fc.constant('timeoutNow' as const) }),
  fc.record({ ...base, type: fc.constant('readIndex' as const), context: str }),
  fc.record({ ...base, type: fc.constant('readIndexResp' as const), context: str, index: uint, reject: fc.boolean() }),
  fc.record({ ...base, type: fc.constant('transferLeader' as const), target: nodeId }),
);

const ALL_TYPES: Message['type'][] = [
  'app', 'appResp', 'vote', 'preVote', 'voteResp', 'preVoteResp', 'heartbeat', 'heartbeatResp',
  'snap', 'timeoutNow', 'readIndex', 'readIndexResp', 'transferLeader',
];

function codecError(f: () => unknown): CodecError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CodecError);
    expect((e as CodecError).code).toBe('ERR_RAFT_CODEC');
    return e as CodecError;
  }
  throw new Error('expected a CodecError, decoding succeeded');
}

describe('raft codec round trips', () => {
  it('every message type decodes to what was encoded, and re-encodes to the same bytes', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(message, (m) => {
        seen.add(m.type);
        const b = encodeMessage(m);
        const d = decodeMessage(b);
        expect(d).toEqual(m);
        expect(Buffer.from(encodeMessage(d)).equals(Buffer.from(b))).toBe(true);
      }),
      { numRuns: 2000 },
    );
    expect([...seen].sort()).toEqual([...ALL_TYPES].sort());
  });

  it('entries, hard states and snapshots round trip', () => {
    fc.assert(fc.property(entry, (e) => {
      expect(decodeEntry(encodeEntry(e))).toEqual(e);
    }), { numRuns: 500 });
    fc.assert(fc.property(hardState, (h) => {
      expect(decodeHardState(encodeHardState(h))).toEqual(h);
    }), { numRuns: 500 });
    fc.assert(fc.property(snapshot, (s) => {
      expect(decodeSnapshot(encodeSnapshot(s))).toEqual(s);
    }), { numRuns: 200 });
  });

  it('keeps number and string node ids apart, and -0 distinct from 0', () => {
    const hs = (vote: NodeId | null) => decodeHardState(encodeHardState({ term: 1, vote, commit: 0 })).vote;
    expect(hs(7)).toBe(7);
    expect(hs('7')).toBe('7');
    expect(hs(null)).toBe(null);
    expect(Object.is(hs(-0), -0)).toBe(true);
    expect(hs(-3.5)).toBe(-3.5);
  });

  it('decoded data does not alias the input buffer', () => {
    const b = encodeEntry({ term: 1, index: 2, type: 'normal', data: new Uint8Array([1, 2, 3]) });
    const e = decodeEntry(b);
    b.fill(0);
    expect([...e.data]).toEqual([1, 2, 3]);
  });

  it('is compact: a heartbeat with small numbers takes a handful of bytes', () => {
    const b = encodeMessage({ type: 'heartbeat', from: 1, to: 2, term: 5, commit: 100, context: null });
    expect(b.byteLength).toBe(9);
  });

  it('accepts a Uint8Array view at an offset, not only a Buffer', () => {
    const inner = encodeMessage({ type: 'voteResp', from: 'a', to: 'b', term: 3, reject: true });
    const outer = new Uint8Array(inner.byteLength + 5);
    outer.set(inner, 5);
    expect(decodeMessage(outer.subarray(5))).toEqual({ type: 'voteResp', from: 'a', to: 'b', term: 3, reject: true });
  });
});

describe('raft codec rejects malformed input', () => {
  const sample: Message = {
    type: 'app',
    from: 1,
    to: 'n2',
    term: 9,
    index: 300,
    logTerm: 8,
    commit: 299,
    entries: [
      { term: 9, index: 301, type: 'normal', data: new Uint8Array([1, 2, 3, 4]) },
      { term: 9, index: 302, type: 'conf', data: new Uint8Array(0) },
    ],
  };

  it('every strict prefix of a valid encoding is refused as truncated', () => {
    const b = encodeMessage(sample);
    for (let n = 0; n < b.byteLength; n++) {
      const err = codecError(() => decodeMessage(b.subarray(0, n)));
      expect(err.message).toMatch(/truncated|version|exceeds the bytes left/);
    }
  });

  it('trailing bytes are refused', () => {
    const b = encodeMessage(sample);
    const longer = new Uint8Array(b.byteLength + 1);
    longer.set(b);
    expect(codecError(() => decodeMessage(longer)).message).toMatch(/1 unexpected trailing byte/);
  });

  it('an unknown version, message type, id tag, entry type or boolean is named', () => {
    const b = encodeMessage(sample);
    const at = (i: number, v: number) => {
      const c = new Uint8Array(b);
      c[i] = v;
      return c;
    };
    expect(codecError(() => decodeMessage(at(0, 2))).message).toMatch(/unsupported format version 2/);
    expect(codecError(() => decodeMessage(at(1, 99))).message).toMatch(/unknown message type code 99/);
    expect(codecError(() => decodeMessage(at(2, 7))).message).toMatch(/message from has unknown node id tag 7/);
    expect(codecError(() => decodeMessage(at(2, 0))).message).toMatch(/message from is null/);
    const vr = encodeMessage({ type: 'voteResp', from: 1, to: 2, term: 3, reject: false });
    const bad = new Uint8Array(vr);
    bad[bad.byteLength - 1] = 2;
    expect(codecError(() => decodeMessage(bad)).message).toMatch(/voteResp reject must be 0 or 1/);
    const e = encodeEntry({ term: 1, index: 1, type: 'normal', data: new Uint8Array(0) });
    const badE = new Uint8Array(e);
    badE[3] = 5;
    expect(codecError(() => decodeEntry(badE)).message).toMatch(/unknown entry type 5/);
  });

  it('lengths and counts larger than the input are refused before allocating', () => {
    // version, app, from=uint 1, to=uint 2, term 1, index 0, logTerm 0, commit 0, count = 2^53-1
    const huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
    const b = new Uint8Array([CODEC_VERSION, 1, 1, 1, 1, 2, 1, 0, 0, 0, ...huge]);
    expect(codecError(() => decodeMessage(b)).message).toMatch(/app entry count \d+ exceeds the bytes left/);
    const s = new Uint8Array([CODEC_VERSION, 1, 1, 0x80, 0x80, 0x01]);
    expect(codecError(() => decodeSnapshot(s)).message).toMatch(/snapshot voters count 16384 exceeds/);
    const d = new Uint8Array([CODEC_VERSION, 1, 1, 0, 0x80, 0x01, 1, 2]);
    expect(codecError(() => decodeEntry(d)).message).toMatch(/truncated: entry data needs 128 byte/);
  });

  it('varints that are too long, too large or not in shortest form are refused', () => {
    const tooLong = new Uint8Array([CODEC_VERSION, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0]);
    expect(codecError(() => decodeHardState(tooLong)).message).toMatch(/longer than 8 bytes/);
    const tooBig = new Uint8Array([CODEC_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0]);
    expect(codecError(() => decodeHardState(tooBig)).message).toMatch(/hard state term exceeds 2\^53-1/);
    const padded = new Uint8Array([CODEC_VERSION, 0x81, 0x00, 0, 0]);
    expect(codecError(() => decodeHardState(padded)).message).toMatch(/non-canonical varint in hard state term/);
  });

  it('invalid UTF-8 in a string is refused', () => {
    const b = encodeMessage({ type: 'readIndex', from: 1, to: 2, term: 1, context: 'ab' });
    const c = new Uint8Array(b);
    c[c.byteLength - 1] = 0xff;
    expect(codecError(() => decodeMessage(c)).message).toMatch(/readIndex context is not valid UTF-8/);
  });

  it('random bytes either decode to something that re-encodes identically, or throw CodecError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 13 }), (tail, type) => {
        const b = new Uint8Array([CODEC_VERSION, type, ...tail]);
        let m: Message;
        try {
          m = decodeMessage(b);
        } catch (e) {
          expect(e).toBeInstanceOf(CodecError);
          return;
        }
        expect(Buffer.from(encodeMessage(m)).equals(Buffer.from(b))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('random single-byte corruption of a valid message never yields a different-type crash', () => {
    const b = encodeMessage(sample);
    fc.assert(
      fc.property(fc.nat(b.byteLength - 1), fc.integer({ min: 0, max: 255 }), (i, v) => {
        const c = new Uint8Array(b);
        c[i] = v;
        try {
          const m = decodeMessage(c);
          expect(Buffer.from(encodeMessage(m)).equals(Buffer.from(c))).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(CodecError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('raft codec refuses to encode what it could not decode', () => {
  it('negative, fractional or unsafe numbers, lone surrogates and non-finite ids', () => {
    const hs = (h: Partial<HardState>) => () => encodeHardState({ term: 1, vote: null, commit: 0, ...h });
    expect(codecError(hs({ term: -1 })).message).toMatch(/hard state term must be a non-negative safe integer, got -1/);
    expect(codecError(hs({ commit: 1.5 })).message).toMatch(/commit/);
    expect(codecError(hs({ term: 2 ** 53 })).message).toMatch(/term/);
    expect(codecError(hs({ vote: Number.NaN })).message).toMatch(/hard state vote must be a finite number/);
    expect(codecError(hs({ vote: 'a\uD800' })).message).toMatch(/lone surrogate/);
    expect(
      codecError(() => encodeMessage({ type: 'nope', from: 1, to: 2, term: 1 } as unknown as Message)).message,
    ).toMatch(/unknown message type nope/);
  });
});
