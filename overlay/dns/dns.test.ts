// The resolver's pure parts: wire format and swarm's naming rules.

import { describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../spec.js';
import { buildQuery, buildResponse, DnsParseError, MAX_A_RECORDS, parseQuery, parseResponse, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, UDP_PAYLOAD_LIMIT_BYTES } from './message.js';
import { lookupName, rotate, type NetworkRecords } from './records.js';
import { containerResolvConf, parseResolvConf } from './upstream.js';

const web: ServiceSpec = { id: 's1', name: 'web', endpointMode: 'vip', vip: '10.0.1.100', backends: ['10.0.1.2', '10.0.1.3'], aliases: ['www'] };
const rr: ServiceSpec = { id: 's2', name: 'db', endpointMode: 'dnsrr', backends: ['10.0.1.7', '10.0.1.8'] };
const other: NetworkRecords = { networkId: 'n2', services: [{ id: 's3', name: 'api', endpointMode: 'vip', vip: '10.0.2.100', backends: ['10.0.2.5'] }] };
const front: NetworkRecords = { networkId: 'n1', services: [web, rr] };

describe('DNS wire format', () => {
  it('round-trips a query and an answer with A records', () => {
    const q = buildQuery(77, 'Tasks.Web.');
    const parsed = parseQuery(q);
    expect(parsed.question).toEqual({ name: 'tasks.web', type: TYPE_A, class: 1 });
    const reply = buildResponse(q, parsed, { rcode: 0, addresses: ['10.0.1.2', '10.0.1.3'], authoritative: true });
    expect(parseResponse(reply)).toEqual({ id: 77, rcode: 0, truncated: false, addresses: ['10.0.1.2', '10.0.1.3'] });
    expect(reply.readUInt16BE(2) & 0x8000).toBe(0x8000); // a response
    expect(reply.readUInt16BE(2) & 0x0100).toBe(0x0100); // RD copied
  });

  it('answers NXDOMAIN with no records', () => {
    const q = buildQuery(5, 'nosuch');
    expect(parseResponse(buildResponse(q, parseQuery(q), { rcode: RCODE_NXDOMAIN }))).toEqual({ id: 5, rcode: RCODE_NXDOMAIN, truncated: false, addresses: [] });
  });

  it('keeps a UDP answer within 512 bytes however many tasks there are', () => {
    const q = buildQuery(1, 'tasks.' + 'x'.repeat(60));
    const many = Array.from({ length: 200 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    const reply = buildResponse(q, parseQuery(q), { rcode: 0, addresses: many });
    expect(reply.length).toBeLessThanOrEqual(UDP_PAYLOAD_LIMIT_BYTES);
    expect(parseResponse(reply).addresses.length).toBeGreaterThanOrEqual(MAX_A_RECORDS);
    // Cut: TC tells the asker to retry over TCP, where every address fits.
    expect(parseResponse(reply).truncated).toBe(true);
    const full = buildResponse(q, parseQuery(q), { rcode: 0, addresses: many, transport: 'tcp' });
    expect(parseResponse(full)).toMatchObject({ truncated: false, addresses: many });
    // An answer that fits is not flagged.
    expect(parseResponse(buildResponse(q, parseQuery(q), { rcode: 0, addresses: many.slice(0, 3) })).truncated).toBe(false);
  });

  it('rejects what is not a single-question query', () => {
    expect(() => parseQuery(Buffer.alloc(5))).toThrow(DnsParseError);
    const response = buildQuery(1, 'a');
    response.writeUInt16BE(0x8000, 2);
    expect(() => parseQuery(response)).toThrow(/response/);
    const truncated = buildQuery(1, 'web').subarray(0, 15);
    expect(() => parseQuery(truncated)).toThrow(DnsParseError);
  });
});

describe('service names', () => {
  it('resolves a VIP service to its VIP and tasks.<name> to its tasks', () => {
    expect(lookupName('web', TYPE_A, [front])).toEqual({ kind: 'answer', addresses: ['10.0.1.100'] });
    expect(lookupName('www', TYPE_A, [front])).toEqual({ kind: 'answer', addresses: ['10.0.1.100'] });
    expect(lookupName('tasks.web', TYPE_A, [front])).toEqual({ kind: 'answer', addresses: ['10.0.1.2', '10.0.1.3'] });
  });

  it('resolves a dnsrr service to its tasks', () => {
    expect(lookupName('db', TYPE_A, [front])).toEqual({ kind: 'answer', addresses: ['10.0.1.7', '10.0.1.8'] });
  });

  it('sees only the networks it is given; service-like names not there are NXDOMAIN, others are forwarded', () => {
    expect(lookupName('api', TYPE_A, [front])).toEqual({ kind: 'nxdomain' });
    expect(lookupName('tasks.api', TYPE_A, [front])).toEqual({ kind: 'nxdomain' });
    expect(lookupName('api', TYPE_A, [front, other])).toEqual({ kind: 'answer', addresses: ['10.0.2.100'] });
    expect(lookupName('example.com', TYPE_A, [front])).toEqual({ kind: 'forward' });
  });

  it('answers other record types of our names with no data rather than forwarding them', () => {
    expect(lookupName('web', TYPE_AAAA, [front])).toEqual({ kind: 'nodata' });
  });

  it('answers a service with no running task with no data', () => {
    const empty: NetworkRecords = { networkId: 'n', services: [{ ...rr, backends: [] }] };
    expect(lookupName('db', TYPE_A, [empty])).toEqual({ kind: 'nodata' });
  });

  it('rotates answers', () => {
    expect(rotate([1, 2, 3], 1)).toEqual([2, 3, 1]);
    expect(rotate([1, 2, 3], 5)).toEqual([3, 1, 2]);
    expect(rotate([], 3)).toEqual([]);
  });
});

describe('resolv.conf', () => {
  it('reads the host resolvers and writes the container file', () => {
    const conf = parseResolvConf('# c\nnameserver 10.1.1.1\nnameserver ::1\nnameserver 127.0.0.53 # local\nsearch a.example b.example\noptions edns0\n');
    expect(conf).toEqual({ nameservers: [{ address: '10.1.1.1', port: 53 }, { address: '127.0.0.53', port: 53 }], search: ['a.example', 'b.example'] });
    expect(containerResolvConf('10.0.1.1', conf.search)).toBe('nameserver 10.0.1.1\nsearch a.example b.example\noptions ndots:0\n');
  });
});
