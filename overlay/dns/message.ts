// The part of the DNS wire format (RFC 1035) the container resolver needs: read the question of
// a query, and write responses with A records, NXDOMAIN, NODATA or SERVFAIL.

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;
export const RCODE_NOERROR = 0;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

/** A classic UDP response must fit 512 bytes; larger answer sets are cut to fit (see MAX_A_RECORDS) and flagged TC. */
export const UDP_PAYLOAD_LIMIT_BYTES = 512;
/** Over TCP a message has a 2-byte length prefix: at most 65535 bytes (~4000 A records). */
export const TCP_PAYLOAD_LIMIT_BYTES = 65_535;
/** Header flag TC: the answer was cut to fit the transport; the asker retries over TCP. */
export const FLAG_TRUNCATED = 0x0200;

export interface DnsQuestion {
  /** Lower-cased, without the trailing dot. */
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface DnsQuery {
  readonly id: number;
  /** Header flags of the query (opcode, RD). */
  readonly flags: number;
  readonly opcode: number;
  readonly question: DnsQuestion;
  /** Byte length of header + first question, to copy the question into the response. */
  readonly questionEnd: number;
}

export class DnsParseError extends Error {
  override readonly name = 'DnsParseError';
  readonly code = 'ERR_DNS_PARSE';
}

const MAX_NAME_LENGTH = 255;

/** Parses a query with exactly one question (what every stub resolver sends). */
export function parseQuery(buf: Buffer): DnsQuery {
  if (buf.length < 12) throw new DnsParseError('message shorter than a DNS header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) !== 0) throw new DnsParseError('message is a response, not a query');
  const qdcount = buf.readUInt16BE(4);
  if (qdcount !== 1) throw new DnsParseError(`query has ${qdcount} questions, expected 1`);
  const labels: string[] = [];
  let at = 12;
  let nameLength = 0;
  while (true) {
    if (at >= buf.length) throw new DnsParseError('question name runs past the message');
    const len = buf[at]!;
    if ((len & 0xc0) !== 0) throw new DnsParseError('compressed name in a question');
    at += 1;
    if (len === 0) break;
    if (at + len > buf.length) throw new DnsParseError('label runs past the message');
    labels.push(buf.toString('latin1', at, at + len));
    at += len;
    nameLength += len + 1;
    if (nameLength > MAX_NAME_LENGTH) throw new DnsParseError('name longer than 255 bytes');
  }
  if (at + 4 > buf.length) throw new DnsParseError('question type/class missing');
  const type = buf.readUInt16BE(at);
  const klass = buf.readUInt16BE(at + 2);
  return { id, flags, opcode: (flags >> 11) & 0xf, question: { name: labels.join('.').toLowerCase(), type, class: klass }, questionEnd: at + 4 };
}

export interface ResponseOptions {
  readonly rcode: number;
  /** IPv4 addresses for A records of the question's name. */
  readonly addresses?: readonly string[];
  readonly ttlSeconds?: number;
  readonly authoritative?: boolean;
  /** How the query came (default udp): sets the size limit of the response. */
  readonly transport?: 'udp' | 'tcp';
}

/** Answers fitting in 512 bytes with a question name of the maximal length. */
export const MAX_A_RECORDS = Math.floor((UDP_PAYLOAD_LIMIT_BYTES - 12 - (MAX_NAME_LENGTH + 1 + 4)) / 16);

/** Builds the response to `query` from the query's bytes (the question section is copied as asked). */
export function buildResponse(queryBytes: Buffer, query: DnsQuery, options: ResponseOptions): Buffer {
  const question = queryBytes.subarray(12, query.questionEnd);
  const addresses = options.addresses ?? [];
  const limit = options.transport === 'tcp' ? TCP_PAYLOAD_LIMIT_BYTES : UDP_PAYLOAD_LIMIT_BYTES;
  const room = Math.floor((limit - 12 - question.length) / 16);
  const answers = addresses.slice(0, Math.max(0, room));
  const truncated = answers.length < addresses.length ? FLAG_TRUNCATED : 0;
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  const rd = query.flags & 0x0100;
  const flags = 0x8000 | (query.opcode << 11) | (options.authoritative ? 0x0400 : 0) | truncated | rd | 0x0080 | (options.rcode & 0xf);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const records = answers.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name at offset 12
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(options.ttlSeconds ?? 600, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((part, i) => rr.writeUInt8(Number(part), 12 + i));
    return rr;
  });
  return Buffer.concat([header, question, ...records]);
}

/** A query message (tests and the upstream forwarder's probes). */
export function buildQuery(id: number, name: string, type: number = TYPE_A): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  const qname = Buffer.concat([...parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, qname, tail]);
}

export interface ParsedResponse {
  readonly id: number;
  readonly rcode: number;
  /** TC: the answer was cut (UDP); the full one is available over TCP. */
  readonly truncated: boolean;
  readonly addresses: readonly string[];
}

/** Reads the A records of a response (tests and diagnostics). Handles compressed answer names. */
export function parseResponse(buf: Buffer): ParsedResponse {
  if (buf.length < 12) throw new DnsParseError('response shorter than a DNS header');
  const id = buf.readUInt16BE(0);
  const rcode = buf.readUInt16BE(2) & 0xf;
  const truncated = (buf.readUInt16BE(2) & FLAG_TRUNCATED) !== 0;
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let at = 12;
  const skipName = (): void => {
    for (let guard = 0; guard < 128; guard++) {
      const len = buf[at];
      if (len === undefined) throw new DnsParseError('name runs past the message');
      if ((len & 0xc0) === 0xc0) {
        at += 2;
        return;
      }
      at += 1 + len;
      if (len === 0) return;
    }
    throw new DnsParseError('name has too many labels');
  };
  for (let i = 0; i < qd; i++) {
    skipName();
    at += 4;
  }
  const addresses: string[] = [];
  for (let i = 0; i < an; i++) {
    skipName();
    if (at + 10 > buf.length) throw new DnsParseError('record header runs past the message');
    const type = buf.readUInt16BE(at);
    const rdlen = buf.readUInt16BE(at + 8);
    at += 10;
    if (at + rdlen > buf.length) throw new DnsParseError('record data runs past the message');
    if (type === TYPE_A && rdlen === 4) addresses.push([...buf.subarray(at, at + 4)].join('.'));
    at += rdlen;
  }
  return { id, rcode, truncated, addresses };
}
