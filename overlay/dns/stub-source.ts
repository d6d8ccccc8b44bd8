// The resolver's front end: a tiny Node program run inside a network's sandbox netns
// (`nsenter --net=/run/netns/<sandbox> node -e STUB_SOURCE <address> <port>`). Node cannot
// setns(2), so the daemon cannot open a socket in the sandbox itself; instead this process binds
// UDP <gateway>:53 there and relays each query over its stdin/stdout pipes — which cross
// namespaces — to the daemon, which answers from its records or forwards to the host's resolvers
// from the host netns (where they are reachable; the sandbox has no route out).
// Protocol, one JSON object per line:
//   stub → daemon  {"ready":true} once bound | {"id":N,"src":"ip","q":"<base64 query>"}
//   daemon → stub  {"id":N,"r":"<base64 response>"}
// The stub exits when its stdin closes, so it never outlives the daemon that started it.
// Plain JavaScript in a string so it runs with the bare `node` binary whatever the build layout.

export const STUB_SOURCE = String.raw`
'use strict';
const dgram = require('node:dgram');
const readline = require('node:readline');
const [address, portText] = process.argv.slice(1);
const MAX_PENDING = 1024;
const PENDING_TTL_MS = 5000;
const pending = new Map();
let nextId = 1;
const sock = dgram.createSocket('udp4');
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
sock.on('error', (e) => { send({ error: e.message }); process.exit(1); });
sock.on('message', (msg, rinfo) => {
  if (pending.size >= MAX_PENDING) return;
  const id = nextId++;
  if (nextId > 2147483647) nextId = 1;
  pending.set(id, { port: rinfo.port, address: rinfo.address, at: Date.now() });
  send({ id, src: rinfo.address, q: msg.toString('base64') });
});
sock.bind(Number(portText), address, () => send({ ready: true }));
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  sock.send(Buffer.from(m.r, 'base64'), p.port, p.address);
});
rl.on('close', () => process.exit(0));
setInterval(() => {
  const now = Date.now();
  for (const [id, p] of pending) if (now - p.at > PENDING_TTL_MS) pending.delete(id);
}, 1000).unref();
`;
