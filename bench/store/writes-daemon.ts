// Child process of `writes-inproc.ts`: one shoald with only the swarm plugin (manager, no worker
// agent), from the tree given as argv[2] — a build (`dist/`, with `cli/daemon/daemon.js`) or a
// source tree (`.ts`, run through tsx, whose helpers show in profiles) — on the unix
// socket argv[3] with its data under argv[4]. Prints `ready` once the API listens; exits on SIGTERM
// (after the daemon stopped). Over the IPC channel, `{ prof: 'start' }` starts the V8 CPU
// profiler and `{ prof: 'stop', path }` writes the profile taken since to `path` (then answers).
import { existsSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, socket, dataRoot] = process.argv.slice(2) as [string, string, string];
const ext = existsSync(join(root, 'cli/daemon/daemon.js')) ? 'js' : 'ts';
const { Daemon } = (await import(pathToFileURL(join(root, `cli/daemon/daemon.${ext}`)).href)) as typeof import('../../cli/daemon/daemon.js');
const { SwarmPlugin } = (await import(pathToFileURL(join(root, `cli/daemon/swarm/plugin.${ext}`)).href)) as typeof import('../../cli/daemon/swarm/plugin.js');
const { RaftNode } = (await import(pathToFileURL(join(root, `raft/node.${ext}`)).href)) as typeof import('../../raft/node.js');
const { pino } = await import('pino');

// The daemon's Raft node, caught at its first proposal, for its group-commit counters.
let raft: InstanceType<typeof RaftNode> | undefined;
const propose = RaftNode.prototype.propose;
RaftNode.prototype.propose = function (this: InstanceType<typeof RaftNode>, data: Uint8Array) {
  raft = this; // eslint-disable-line @typescript-eslint/no-this-alias -- the instance is what we are after
  return propose.call(this, data);
};

// SHOAL_BENCH_LOG_LEVEL=info shows, e.g., the Raft node's snapshots and how long they took (stderr).
const level = (process.env['SHOAL_BENCH_LOG_LEVEL'] ?? 'error') as 'error';
const daemon = new Daemon(
  { dataRoot, socket, listenAddr: '127.0.0.1:0', advertiseAddr: '', registryMirrors: [], insecureRegistries: [], logLevel: level, hostname: 'bench' },
  pino({ level }, process.stderr),
  [new SwarmPlugin()],
);
await daemon.start();
process.stdout.write('ready\n');
const inspector = new Session();
process.on('message', (m: { prof?: string; path?: string }) => {
  // { prof: 'metrics' } only answers with the Raft node's counters.
  void (async () => {
    if (m.prof === 'start') {
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.setSamplingInterval', { interval: 200 });
      await inspector.post('Profiler.start');
    } else if (m.prof === 'stop' && m.path !== undefined) {
      const { profile } = await inspector.post('Profiler.stop');
      writeFileSync(m.path, JSON.stringify(profile));
      inspector.disconnect();
    }
    process.send?.({ done: m.prof, raft: raft?.metrics() });
  })();
});
process.once('SIGTERM', () => {
  void daemon.stop().finally(() => process.exit(0));
});
