// The resolver's front end: a tiny Node program run inside a network's sandbox netns
// (`nsenter --net=/run/netns/<sandbox> node -e STUB_SOURCE <address> <port>`). Node cannot
// setns(2), so the daemon cannot open a socket in the sandbox itself; instead this process binds
// UDP and TCP <gateway>:53 there and relays each query over its stdin/stdout pipes — which cross
// namespaces — to the daemon, which answers from its records or forwards to the host's resolvers
// from the host netns (where they are reachable; the sandbox has no route out).
// Protocol, one JSON object per line:
//   stub → daemon  {"ready":true} once both are bound | {"id":N,"src":"ip","q":"<base64 query>"[,"tcp":true]}
//   daemon → stub  {"id":N,"r":"<base64 response>"}
// TCP (RFC 7766): each message has a 2-byte length prefix; a connection may carry several queries
// (answered as they come back); bounded in connections, pending bytes and idle time.
// The stub exits when its stdin closes, so it never outlives the daemon that started it.
// Plain JavaScript in a string so it runs with the bare `node` binary whatever the build layout.

export const STUB_SOURCE = String.raw`
'use strict';
const dgram = require('node:dgram');
const net = require('node:net');
const readline = require('node:readline');
const [address, portText] = process.argv.slice(1);
const MAX_PENDING = 1024;
const PENDING_TTL_MS = 5000;
const MAX_TCP_CONNECTIONS = 128;
const TCP_IDLE_MS = 10000;
const MAX_TCP_BUFFER_BYTES = 4 * 65537;
const pending = new Map();
let nextId = 1;
let bound = 0;
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const relay = (msg, src, target) => {
  if (pending.size >= MAX_PENDING) return;
  const id = nextId++;
  if (nextId > 2147483647) nextId = 1;
  pending.set(id, { ...target, at: Date.now() });
  send(target.conn ? { id, src, q: msg.toString('base64'), tcp: true } : { id, src, q: msg.toString('base64') });
};
const isBound = () => { if (++bound === 2) send({ ready: true }); };
const sock = dgram.createSocket('udp4');
sock.on('error', (e) => { send({ error: e.message }); process.exit(1); });
sock.on('message', (msg, rinfo) => relay(msg, rinfo.address, { port: rinfo.port, address: rinfo.address }));
sock.bind(Number(portText), address, isBound);
const server = net.createServer((conn) => {
  let buf = Buffer.alloc(0);
  conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
  conn.on('error', () => conn.destroy());
  conn.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length > MAX_TCP_BUFFER_BYTES) { conn.destroy(); return; }
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0);
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      relay(Buffer.from(msg), conn.remoteAddress.replace(/^::ffff:/, ''), { conn });
    }
  });
});
server.maxConnections = MAX_TCP_CONNECTIONS;
server.on('error', (e) => { send({ error: e.message }); process.exit(1); });
server.listen(Number(portText), address, isBound);
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  const r = Buffer.from(m.r, 'base64');
  if (p.conn) {
    if (p.conn.destroyed || r.length > 65535) return;
    const len = Buffer.alloc(2);
    len.writeUInt16BE(r.length, 0);
    p.conn.write(Buffer.concat([len, r]));
  } else {
    sock.send(r, p.port, p.address);
  }
});
rl.on('close', () => process.exit(0));
setInterval(() => {
  const now = Date.now();
  for (const [id, p] of pending) if (now - p.at > PENDING_TTL_MS) pending.delete(id);
}, 1000).unref();
`;
