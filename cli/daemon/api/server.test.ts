import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unixRequest } from '../../testing/http.js';
import type { DaemonOptions } from '../options.js';
import { INACTIVE_SWARM, type SwarmInfo } from '../swarm-status.js';
import { ConflictError, MSG_NO_SWARM, NotFoundError } from './errors.js';
import { ApiServer, reply } from './server.js';
import { SWARM_PATH_PREFIXES, registerSwarmGate } from './swarm-gate.js';
import { registerSystemRoutes } from './system.js';

class TeapotError extends Error {}

const options: DaemonOptions = {
  dataRoot: '/var/lib/shoal-test',
  socket: '/unused',
  listenAddr: '0.0.0.0:2377',
  advertiseAddr: '',
  registryMirrors: ['http://10.231.1.1:5000'],
  insecureRegistries: ['10.231.1.1:5000'],
  logLevel: 'info',
  hostname: 'test-host',
};

describe('ApiServer', () => {
  let dir: string;
  let sock: string;
  let api: ApiServer;
  let swarm: SwarmInfo = INACTIVE_SWARM;
  let waitStarted = false;
  let waitAborted = false;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-api-'));
    sock = join(dir, 'api.sock');
    api = new ApiServer({ logger: pino({ level: 'silent' }), maxBodyBytes: 1024 });
    registerSystemRoutes(api, { options, engineId: 'engine-1', swarm: () => ({ swarmInfo: () => swarm }) });
    // What a plugin does: specific routes that win over the gate's catch-alls, an error mapper.
    api.route('POST', '/services/create', async (req) => reply.json({ ID: 'svc1', Warnings: null, got: await req.json() }, 201));
    api.route('GET', '/services/{id}', (req) => {
      if (req.params['id'] === 'dup') throw new ConflictError('name conflicts');
      if (req.params['id'] === 'teapot') throw new TeapotError('short and stout');
      if (req.params['id'] === 'boom') throw new Error('it broke');
      throw new NotFoundError(`service ${req.params['id'] ?? ''} not found`);
    });
    api.route('GET', '/plugins/{name*}/json', (req) => reply.json({ name: req.params['name'], version: req.apiVersion }));
    api.route('DELETE', '/secrets/{id}', () => reply.empty(204));
    api.route('GET', '/echo/{id}', (req) => reply.json({ id: req.params['id'], path: req.path, version: req.apiVersion, query: [...req.query.entries()] }));
    api.route('GET', '/wait', (req) => {
      // Answers only when the client has gone: what a follow stream does.
      return new Promise<ReturnType<typeof reply.empty>>((resolve) => {
        waitStarted = true;
        req.signal.addEventListener('abort', () => {
          waitAborted = true;
          resolve(reply.empty(204));
        });
      });
    });
    api.addErrorMapper((err) => (err instanceof TeapotError ? new ConflictError(`mapped: ${err.message}`) : undefined));
    registerSwarmGate(api);
    await api.listenUnix(sock);
  });

  afterAll(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('HEAD /_ping carries the headers the docker CLI negotiates with, and no body', async () => {
    const r = await unixRequest(sock, 'HEAD', '/_ping');
    expect(r.status).toBe(200);
    expect(r.headers['api-version']).toBe('1.50');
    expect(r.headers['ostype']).toBe('linux');
    expect(r.headers['docker-experimental']).toBe('false');
    expect(r.headers['swarm']).toBe('inactive');
    expect(r.headers['cache-control']).toBe('no-cache, no-store, must-revalidate');
    expect(r.text).toBe('');
  });

  it('GET /_ping says OK and reflects the swarm state in the Swarm header', async () => {
    expect((await unixRequest(sock, 'GET', '/_ping')).text).toBe('OK');
    swarm = { ...INACTIVE_SWARM, LocalNodeState: 'active', ControlAvailable: true, NodeID: 'n1' };
    try {
      expect((await unixRequest(sock, 'GET', '/_ping')).headers['swarm']).toBe('active/manager');
      swarm = { ...swarm, ControlAvailable: false };
      expect((await unixRequest(sock, 'HEAD', '/_ping')).headers['swarm']).toBe('active/worker');
    } finally {
      swarm = INACTIVE_SWARM;
    }
  });

  it('GET /version at versioned and unversioned paths', async () => {
    for (const path of ['/version', '/v1.50/version', '/v1.24/version', '/v1.41/version']) {
      const r = await unixRequest(sock, 'GET', path);
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/json');
      const body = JSON.parse(r.text) as Record<string, unknown>;
      expect(body['ApiVersion']).toBe('1.50');
      expect(body['MinAPIVersion']).toBe('1.24');
      expect(body['Os']).toBe('linux');
      expect((body['Components'] as { Name: string }[])[0]?.Name).toBe('Engine');
    }
  });

  it("GET /info has the daemon's facts and the Swarm section of an inactive node", async () => {
    const body = JSON.parse((await unixRequest(sock, 'GET', '/v1.50/info')).text) as Record<string, unknown>;
    expect(body['ID']).toBe('engine-1');
    expect(body['Name']).toBe('test-host');
    expect(body['OSType']).toBe('linux');
    expect(body['DockerRootDir']).toBe('/var/lib/shoal-test');
    expect(body['Swarm']).toEqual({ NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null });
    const reg = body['RegistryConfig'] as { Mirrors: string[]; IndexConfigs: Record<string, { Secure: boolean }> };
    expect(reg.Mirrors).toEqual(['http://10.231.1.1:5000']);
    expect(reg.IndexConfigs['10.231.1.1:5000']?.Secure).toBe(false);
  });

  it('refuses API versions outside 1.24..1.50 with the daemon texts', async () => {
    const old = await unixRequest(sock, 'GET', '/v1.23/info');
    expect(old.status).toBe(400);
    expect(JSON.parse(old.text)).toEqual({
      message: 'client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version',
    });
    const tooNew = await unixRequest(sock, 'GET', '/v1.52/info');
    expect(tooNew.status).toBe(400);
    expect(JSON.parse(tooNew.text)).toEqual({ message: 'client version 1.52 is too new. Maximum supported API version is 1.50' });
  });

  it('unknown paths and wrong methods are 404 "page not found" with an exact application/json type', async () => {
    for (const [method, path] of [['GET', '/nope'], ['POST', '/version'], ['GET', '/v1.50/containers/json']] as const) {
      const r = await unixRequest(sock, method, path);
      expect(r.status).toBe(404);
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.text)).toEqual({ message: 'page not found' });
    }
  });

  it('every swarm path answers 503 with Docker\'s exact "not a swarm manager" text until a manager serves it', async () => {
    for (const prefix of SWARM_PATH_PREFIXES) {
      for (const [method, path] of [['GET', prefix], ['GET', `/v1.50${prefix}/abc/logs`], ['POST', `${prefix}/abc/update?version=3`], ['DELETE', `${prefix}/x`]] as const) {
        if (method === 'DELETE' && prefix === '/secrets') continue; // served by the test's plugin route
        const r = await unixRequest(sock, method, path);
        expect(r.status, `${method} ${path}`).toBe(503);
        expect(r.headers['content-type']).toBe('application/json');
        expect(JSON.parse(r.text)).toEqual({ message: MSG_NO_SWARM });
      }
    }
    expect(MSG_NO_SWARM).toBe('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.');
  });

  it('routes registered by a plugin win over the catch-alls', async () => {
    const created = await unixRequest(sock, 'POST', '/v1.50/services/create', '{"Name":"web"}', { 'Content-Type': 'application/json' });
    expect(created.status).toBe(201);
    expect(JSON.parse(created.text)).toEqual({ ID: 'svc1', Warnings: null, got: { Name: 'web' } });
    const missing = await unixRequest(sock, 'GET', '/services/nosuch');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toEqual({ message: 'service nosuch not found' });
    const deleted = await unixRequest(sock, 'DELETE', '/v1.50/secrets/s1');
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
  });

  it('greedy parameters and the requested API version reach the handler', async () => {
    const r = await unixRequest(sock, 'GET', '/v1.41/plugins/library/busybox:latest/json');
    expect(JSON.parse(r.text)).toEqual({ name: 'library/busybox:latest', version: '1.41' });
    const unversioned = await unixRequest(sock, 'GET', '/plugins/busybox/json');
    expect(JSON.parse(unversioned.text)).toEqual({ name: 'busybox', version: '1.50' });
  });

  it('typed errors keep their status; mapped errors get the mapper\'s; others are 500 with their message', async () => {
    const dup = await unixRequest(sock, 'GET', '/services/dup');
    expect([dup.status, JSON.parse(dup.text)]).toEqual([409, { message: 'name conflicts' }]);
    const teapot = await unixRequest(sock, 'GET', '/services/teapot');
    expect([teapot.status, JSON.parse(teapot.text)]).toEqual([409, { message: 'mapped: short and stout' }]);
    const boom = await unixRequest(sock, 'GET', '/services/boom');
    expect([boom.status, JSON.parse(boom.text)]).toEqual([500, { message: 'it broke' }]);
  });

  it('malformed JSON is a 400 that says so', async () => {
    const r = await unixRequest(sock, 'POST', '/services/create', '{"Name": web}', { 'Content-Type': 'application/json' });
    expect(r.status).toBe(400);
    expect((JSON.parse(r.text) as { message: string }).message).toMatch(/^invalid JSON: /);
  });

  it('a JSON body with another content type is a 400', async () => {
    const r = await unixRequest(sock, 'POST', '/services/create', '{}', { 'Content-Type': 'text/plain' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text)).toEqual({ message: "unsupported Content-Type header (text/plain): must be 'application/json'" });
  });

  it('a body over the limit is a 413 with the limit in the message', async () => {
    const r = await unixRequest(sock, 'POST', '/services/create', JSON.stringify({ pad: 'x'.repeat(2000) }), { 'Content-Type': 'application/json' });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.text)).toEqual({ message: 'request body is larger than the limit of 1024 bytes' });
  });

  it('paths and queries read as URL parsing gives them: percent-decoding, dot segments, raw and encoded queries', async () => {
    const get = async (target: string): Promise<unknown> => {
      const r = await unixRequest(sock, 'GET', target);
      expect(r.status, target).toBe(200);
      expect(Number(r.headers['content-length']), target).toBe(Buffer.byteLength(r.text, 'utf8'));
      return JSON.parse(r.text);
    };
    const filters = '{"name":{"web":true}}';
    expect(await get(`/v1.41/echo/a?filters=${encodeURIComponent(filters)}&all=1`)).toEqual({ id: 'a', path: '/echo/a', version: '1.41', query: [['filters', filters], ['all', '1']] });
    expect(await get(`/echo/b?filters=${filters}&x=a+b&y=%2B`)).toEqual({ id: 'b', path: '/echo/b', version: '1.50', query: [['filters', filters], ['x', 'a b'], ['y', '+']] });
    expect(await get('/echo/caf%C3%A9')).toEqual({ id: 'café', path: '/echo/caf%C3%A9', version: '1.50', query: [] });
    expect(await get('/v1.41/nothing/../echo/d')).toEqual({ id: 'd', path: '/echo/d', version: '1.41', query: [] });
    expect(await get('/v1.41/nothing/%2e%2E/echo/e?')).toEqual({ id: 'e', path: '/echo/e', version: '1.41', query: [] });
  });

  it("a handler's abort signal fires when the client goes away before the answer", async () => {
    const req = request({ socketPath: sock, path: '/wait', method: 'GET' });
    req.on('error', () => undefined); // the destroy below
    req.end();
    for (let i = 0; i < 200 && !waitStarted; i++) await new Promise((r) => setTimeout(r, 10));
    expect(waitStarted).toBe(true);
    req.destroy();
    for (let i = 0; i < 200 && !waitAborted; i++) await new Promise((r) => setTimeout(r, 10));
    expect(waitAborted).toBe(true);
  });

  it('a route added after requests were served is found, beside a parameter-first route and the catch-alls', async () => {
    const before = await unixRequest(sock, 'GET', '/v1.50/late/x');
    expect(before.status).toBe(404);
    api.route('GET', '/{kind}/x/y', (req) => reply.json({ kind: req.params['kind'] }));
    api.route('GET', '/late/{id}', (req) => reply.json({ late: req.params['id'] }));
    expect(JSON.parse((await unixRequest(sock, 'GET', '/v1.50/late/x')).text)).toEqual({ late: 'x' });
    expect(JSON.parse((await unixRequest(sock, 'GET', '/late/x/y')).text)).toEqual({ kind: 'late' });
    expect(JSON.parse((await unixRequest(sock, 'GET', '/other/x/y')).text)).toEqual({ kind: 'other' });
    // The swarm gate's catch-alls still answer their prefixes; specific routes still win.
    expect((await unixRequest(sock, 'GET', '/v1.50/nodes/n1')).status).toBe(503);
    expect((await unixRequest(sock, 'DELETE', '/secrets/s1')).status).toBe(204);
  });

  it('an empty body reads as no JSON', async () => {
    const r = await unixRequest(sock, 'POST', '/services/create', '', {});
    expect(r.status).toBe(201);
    expect((JSON.parse(r.text) as { got?: unknown }).got).toBeUndefined();
  });
});
