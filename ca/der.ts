// A minimal DER encoder and reader: just what node certificate issuance needs on its hot path.
// @peculiar/x509 builds a node certificate in ~5.7 ms and checks a CSR in ~2.2 ms here (its generic
// ASN.1 schema layer); assembling the fixed-shape TBSCertificate by hand and signing with node:crypto
// takes well under 1 ms, which is what lets one CA issue hundreds of certificates a second.

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

function lengthBytes(length: number): number[] {
  if (length < 0x80) return [length];
  const out: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) out.unshift(n & 0xff);
  return [0x80 | out.length, ...out];
}

export function tlv(tag: number, ...content: readonly Uint8Array[]): Uint8Array {
  const size = content.reduce((sum, c) => sum + c.length, 0);
  const header = [tag, ...lengthBytes(size)];
  const out = new Uint8Array(header.length + size);
  out.set(header, 0);
  let at = header.length;
  for (const c of content) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export const seq = (...content: readonly Uint8Array[]): Uint8Array => tlv(TAG.SEQUENCE, ...content);

/** A non-negative integer from big-endian bytes (a leading 0x00 added when the top bit is set). */
export function integer(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const body = bytes.subarray(start);
  return (body[0] ?? 0) & 0x80 ? tlv(TAG.INTEGER, Uint8Array.of(0), body) : tlv(TAG.INTEGER, body);
}

export function smallInteger(value: number): Uint8Array {
  return integer(Uint8Array.of(value));
}

export function oid(dotted: string): Uint8Array {
  const parts = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = parts;
  const out: number[] = [a * 40 + b];
  for (const part of rest) {
    const chunk: number[] = [part & 0x7f];
    for (let n = Math.floor(part / 128); n > 0; n = Math.floor(n / 128)) chunk.unshift((n & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

export function utf8(text: string): Uint8Array {
  return tlv(TAG.UTF8_STRING, Buffer.from(text, 'utf8'));
}

export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  return tlv(TAG.BIT_STRING, Uint8Array.of(unusedBits), bytes);
}

export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.OCTET_STRING, bytes);
}

/** RFC 5280: UTCTime for years 1950–2049, GeneralizedTime after; whole seconds, Zulu. */
export function time(ms: number): Uint8Array {
  const iso = new Date(ms).toISOString(); // 2026-11-25T19:21:24.000Z
  const year = Number(iso.slice(0, 4));
  const rest = iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + 'Z';
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, Buffer.from(iso.slice(2, 4) + rest, 'latin1'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(iso.slice(0, 4) + rest, 'latin1'));
}

/** Context-specific tag number n, primitive (0x80|n) or constructed (0xa0|n). */
export function context(n: number, constructed: boolean, ...content: readonly Uint8Array[]): Uint8Array {
  return tlv((constructed ? 0xa0 : 0x80) | n, ...content);
}

export interface DerElement {
  readonly tag: number;
  /** The whole element, header included. */
  readonly raw: Uint8Array;
  /** The content octets. */
  readonly content: Uint8Array;
}

/** Reads one element at `offset`; throws RangeError on truncated or over-long input. */
export function readElement(bytes: Uint8Array, offset = 0): DerElement {
  const tag = bytes[offset];
  let lengthByte = bytes[offset + 1];
  if (tag === undefined || lengthByte === undefined) throw new RangeError('DER: truncated header');
  let at = offset + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count === 0 || count > 4) throw new RangeError('DER: unsupported length encoding');
    length = 0;
    for (let i = 0; i < count; i++) {
      lengthByte = bytes[at++];
      if (lengthByte === undefined) throw new RangeError('DER: truncated length');
      length = length * 256 + lengthByte;
    }
  }
  if (at + length > bytes.length) throw new RangeError('DER: element runs past the end of the input');
  return { tag, raw: bytes.subarray(offset, at + length), content: bytes.subarray(at, at + length) };
}

/** The elements inside a constructed element's content. Bounded by the content's size. */
export function readChildren(content: Uint8Array): DerElement[] {
  const out: DerElement[] = [];
  for (let at = 0; at < content.length; ) {
    const el = readElement(content, at);
    out.push(el);
    at += el.raw.length;
  }
  return out;
}
