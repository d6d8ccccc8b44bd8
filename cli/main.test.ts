import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, resolveHost, socketPathOf } from './client/api-client.js';
import { CliError, DaemonResponseError } from './errors.js';
import { ApiServer, reply } from './daemon/api/server.js';
import { registerSwarmGate } from './daemon/api/swarm-gate.js';
import { registerSystemRoutes } from './daemon/api/system.js';
import { INACTIVE_SWARM } from './daemon/swarm-status.js';
import { COMMANDS } from './commands/index.js';
import { COMMAND_LOADERS, commandWord, runCli } from './main.js';

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Captured> {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (t) => (out += t), err: (t) => (err += t) }, env);
  return { code, out, err };
}

describe('shoal argument parsing', () => {
  it('--help lists the commands; every command has --help', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['info', 'version', 'lab']) expect(top.out).toContain(`shoal ${c}`);
    for (const sub of [['info'], ['version'], ['lab'], ['lab', 'up'], ['lab', 'exec'], ['lab', 'partition'], ['lab', 'down']]) {
      const r = await cli([...sub, '--help']);
      expect(r.code, sub.join(' ')).toBe(0);
      expect(r.out).toContain('--help');
    }
    expect((await cli(['lab', 'up', '--help'])).out).toMatch(/--managers[\s\S]*default: 3[\s\S]*--workers[\s\S]*default: 2/);
  });

  it('usage errors are one line and exit code 1', async () => {
    for (const args of [[], ['bogus'], ['lab'], ['version', '--nope'], ['lab', 'kill']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });

  it('lab commands name the lab that is missing', async () => {
    const root = await mkdtemp(join(tmpdir(), 'shoal-lab-root-'));
    try {
      const r = await cli(['lab', 'ls', '--name', 'nosuch'], { SHOAL_LAB_ROOT: root });
      expect(r.code).toBe(1);
      expect(r.err).toBe("no lab named \"nosuch\": start one with 'shoal lab up --name nosuch'\n");
      const bad = await cli(['lab', 'env', 'x-m1', '--name', 'Bad_Name'], { SHOAL_LAB_ROOT: root });
      expect(bad.err).toMatch(/^invalid lab name "Bad_Name"/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('an unreachable daemon is one clear line', async () => {
    const r = await cli(['info', '-H', 'unix:///nonexistent/shoal.sock']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('Cannot connect to the Shoal daemon at unix:///nonexistent/shoal.sock (ENOENT). Is shoald running?\n');
  });
});

describe('loading only the command named', () => {
  it('the loader table and commands/index.ts name the same commands', async () => {
    const loaded = await Promise.all(Object.values(COMMAND_LOADERS).map((load) => load()));
    expect(new Set(loaded)).toEqual(new Set(COMMANDS));
    expect(loaded).toHaveLength(COMMANDS.length);
  });

  it('finds the command word past global options; help first or no command loads every command', () => {
    expect(commandWord(['service', 'ls'])).toBe('service');
    expect(commandWord(['-H', 'unix:///x.sock', 'node', 'ls'])).toBe('node');
    expect(commandWord(['--host', 'unix:///x.sock', 'config', 'ls'])).toBe('config');
    expect(commandWord(['--host=unix:///x.sock', 'stack', 'ls'])).toBe('stack');
    expect(commandWord(['--help', 'service'])).toBeNull();
    expect(commandWord([])).toBeNull();
  });

  it('a usage error in one command and an unknown command still read as before', async () => {
    const unknown = await cli(['servce', 'ls']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/Did you mean service\?/);
    const help = await cli(['service', '--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('shoal service create');
  });
});

describe('daemon host selection', () => {
  it('takes -H, then SHOAL_HOST, then DOCKER_HOST, then the default socket', () => {
    expect(resolveHost('unix:///a', { SHOAL_HOST: 'unix:///b', DOCKER_HOST: 'unix:///c' })).toBe('unix:///a');
    expect(resolveHost(undefined, { SHOAL_HOST: 'unix:///b', DOCKER_HOST: 'unix:///c' })).toBe('unix:///b');
    expect(resolveHost(undefined, { DOCKER_HOST: 'unix:///c' })).toBe('unix:///c');
    expect(resolveHost(undefined, {})).toBe('unix:///run/shoal/shoal.sock');
  });

  it('only unix sockets are daemon addresses', () => {
    expect(socketPathOf('unix:///run/x.sock')).toBe('/run/x.sock');
    expect(() => socketPathOf('tcp://1.2.3.4:2375')).toThrow(CliError);
  });
});

describe('the CLI against a real API server', () => {
  let dir: string;
  let sock: string;
  let api: ApiServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-cli-'));
    sock = join(dir, 'api.sock');
    api = new ApiServer({ logger: pino({ level: 'silent' }) });
    const options = { dataRoot: '/d', socket: sock, listenAddr: '0.0.0.0:2377', advertiseAddr: '', registryMirrors: [], insecureRegistries: [], logLevel: 'info' as const, hostname: 'cli-host' };
    registerSystemRoutes(api, { options, engineId: 'e1', swarm: () => ({ swarmInfo: () => INACTIVE_SWARM }) });
    // Echoes the API version of the path a client used, to check version negotiation.
    api.route('GET', '/echo-path', (req) => reply.json({ version: req.apiVersion }));
    registerSwarmGate(api);
    await api.listenUnix(sock);
  });

  afterAll(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('shoal version --format and shoal info --format read the daemon', async () => {
    const v = await cli(['version', '--format', '{{.Server.APIVersion}} {{.Client.Version}}', '-H', `unix://${sock}`]);
    expect([v.code, v.out]).toEqual([0, '1.50 0.1.0\n']);
    const i = await cli(['info', '--format', '{{.Swarm.LocalNodeState}} {{.Name}}'], { SHOAL_HOST: `unix://${sock}` });
    expect([i.code, i.out]).toEqual([0, 'inactive cli-host\n']);
    const plain = await cli(['info'], { DOCKER_HOST: `unix://${sock}` });
    expect(plain.out).toContain(' Swarm: inactive\n');
  });

  it('negotiates the lower of the two API versions', async () => {
    const c = new ApiClient(`unix://${sock}`);
    try {
      expect(await c.apiVersion()).toBe('1.50');
      expect(await c.get('/echo-path')).toEqual({ version: '1.50' });
    } finally {
      c.close();
    }
    const pinned = new ApiClient(`unix://${sock}`, '1.41');
    try {
      expect(await pinned.get('/echo-path')).toEqual({ version: '1.41' });
    } finally {
      pinned.close();
    }
  });

  it("daemon errors read as docker's", async () => {
    const c = new ApiClient(`unix://${sock}`);
    try {
      const err = await c.get('/services').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DaemonResponseError);
      expect((err as DaemonResponseError).status).toBe(503);
      expect((err as Error).message).toBe(
        'Error response from daemon: This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.',
      );
    } finally {
      c.close();
    }
  });
});

describe('bin entry points', () => {
  it('say to run npm run build when dist/ is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      for (const name of ['shoal', 'shoald']) {
        copyFileSync(join(import.meta.dirname, '..', 'bin', name), join(dir, 'bin', name));
        const r = spawnSync(process.execPath, [join(dir, 'bin', name), '--help'], { encoding: 'utf8' });
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(`${name}: ${join(dir, 'dist', 'cli', `${name}.js`)} is missing: run \`npm run build\` first\n`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
