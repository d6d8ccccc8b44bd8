// The control API in process, over a real single-manager store (RaftNode, DurableLog in a temp
// dir, loopback TCP): what `docker service/secret/config/network/node/swarm …` would see.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ClusterCA } from '../../ca/cluster-ca.js';
import { ProposalRejectedError } from '../../raft/node.js';
import type { MemoryStore, Node, ServiceSpec, Task } from '../store/index.js';
import { StoreCluster } from '../store/testing/cluster.js';
import { ControlApi } from './control-api.js';
import { ControlError, toControlError } from './errors.js';
import type { StoredCluster } from './seams.js';
import { MAX_SECRET_BYTES } from './validate.js';

/** The body `docker service create --name web --replicas 3 -p 8080:80 nginx` sends (docker-api.md §2.12). */
function cliSpec(name: string, extra: Partial<Record<keyof ServiceSpec, unknown>> = {}): Record<string, unknown> {
  return {
    Name: name,
    Labels: {},
    TaskTemplate: {
      ContainerSpec: { Image: 'nginx:latest', Init: false, DNSConfig: {} },
      Resources: { Limits: {}, Reservations: {} },
      Placement: { Platforms: [{ Architecture: 'amd64', OS: 'linux' }] },
      ForceUpdate: 0,
    },
    Mode: { Replicated: { Replicas: 3 } },
    ...extra,
  };
}

async function refusal(p: Promise<unknown> | (() => unknown)): Promise<ControlError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(ControlError);
    return err as ControlError;
  }
  throw new Error('expected a refusal, the call succeeded');
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('ControlApi over a single-manager store', () => {
  let cluster: StoreCluster;
  let store: MemoryStore;
  let api: ControlApi;

  beforeAll(async () => {
    cluster = await StoreCluster.start({ size: 1 });
    store = (await cluster.waitLeader()).store;
    api = new ControlApi({ store });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  describe('services', () => {
    it('create → get (ID, name, prefix) → list → update → remove, in Docker shapes', async () => {
      const created = await api.createService(cliSpec('web', { Mode: { Replicated: {} } }));
      expect(created.ID).toMatch(/^[0-9a-z]{25}$/);
      expect(created.Version.Index).toBeGreaterThan(0);
      // dockerd's default for `"Mode":{"Replicated":{}}` is 1 replica; unmodelled fields survive.
      expect(created.Spec.Mode).toEqual({ Replicated: { Replicas: 1 } });
      expect(created.Spec.TaskTemplate.ContainerSpec).toEqual({ Image: 'nginx:latest', Init: false, DNSConfig: {} });
      expect(api.getService('web').ID).toBe(created.ID);
      expect(api.getService(created.ID.slice(0, 6)).ID).toBe(created.ID);
      expect(api.listServices({ namePrefixes: ['we'] }).map((s) => s.ID)).toEqual([created.ID]);
      expect(api.listServices({ names: ['nope'] })).toEqual([]);

      const spec = { ...created.Spec, Mode: { Replicated: { Replicas: 5 } } };
      const updated = await api.updateService(created.ID, created.Version.Index, spec);
      expect(updated.Version.Index).toBeGreaterThan(created.Version.Index);
      expect(updated.Spec.Mode).toEqual({ Replicated: { Replicas: 5 } });
      expect(updated.PreviousSpec?.Mode).toEqual({ Replicated: { Replicas: 1 } });
      expect(updated.CreatedAt).toBe(created.CreatedAt);

      const back = await api.updateService('web', updated.Version.Index, {}, { rollback: true });
      expect(back.Spec.Mode).toEqual({ Replicated: { Replicas: 1 } });

      await api.removeService('web');
      const gone = await refusal(() => api.getService('web'));
      expect(gone.status).toBe('not-found');
      expect(gone.message).toBe('service web not found');
    });

    it('a stale version is refused with "update out of sequence" and changes nothing', async () => {
      const s = await api.createService(cliSpec('stale'));
      await api.updateService(s.ID, s.Version.Index, { ...s.Spec, Labels: { a: '1' } });
      const err = await refusal(api.updateService(s.ID, s.Version.Index, { ...s.Spec, Labels: { b: '2' } }));
      expect(err.message).toBe('update out of sequence');
      expect(err.code).toBe('ERR_CONTROL_SEQUENCE');
      expect(err.status).toBe('unknown'); // what swarmkit answers; dockerd shows 500 "rpc error: code = Unknown desc = …"
      expect(api.getService(s.ID).Spec.Labels).toEqual({ a: '1' });
      const noVersion = await refusal(api.updateService(s.ID, undefined as unknown as number, s.Spec));
      expect(noVersion.message).toMatch(/needs the version the object was read at/);
    });

    it('a duplicate name is AlreadyExists with dockerd’s message', async () => {
      await api.createService(cliSpec('dup'));
      const err = await refusal(api.createService(cliSpec('DUP')));
      expect(err.status).toBe('already-exists');
      expect(err.message).toBe('name conflicts with an existing object: service DUP already exists');
    });

    const bad: [string, Record<string, unknown>, RegExp][] = [
      ['a bad name', cliSpec('we b'), /^name must be valid as a DNS name component \(service name "we b"/],
      ['a name over 63 characters', cliSpec('a'.repeat(64)), /name must be 63 characters or fewer/],
      ['no name', cliSpec(''), /^meta: name must be provided/],
      ['negative replicas', cliSpec('neg', { Mode: { Replicated: { Replicas: -1 } } }), /^Mode\.Replicated\.Replicas must be ≥ 0, got -1$/],
      ['fractional replicas', cliSpec('frac', { Mode: { Replicated: { Replicas: 1.5 } } }), /Replicas must be a whole number, got 1.5/],
      ['an unknown mode', cliSpec('mode', { Mode: { Sharded: {} } }), /^unknown service mode "Sharded": use one of Replicated, Global, ReplicatedJob, GlobalJob$/],
      ['two modes', cliSpec('modes', { Mode: { Replicated: {}, Global: {} } }), /exactly one mode, got Replicated and Global/],
      ['an unknown top-level field', { ...cliSpec('field'), Replicas: 3 }, /^unknown field ServiceSpec\.Replicas \(known fields: Name, Labels, TaskTemplate/],
      ['no image', cliSpec('noimg', { TaskTemplate: { ContainerSpec: {} } }), /^ContainerSpec: image reference must be provided/],
      ['an invalid image', cliSpec('badimg', { TaskTemplate: { ContainerSpec: { Image: 'Nginx:la test' } } }), /^ContainerSpec: "Nginx:la test" is not a valid repository\/tag$/],
      ['no task template', { Name: 'notask' }, /^TaskSpec: missing runtime/],
      [
        'a port published twice',
        cliSpec('ports', { EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }, { TargetPort: 81, PublishedPort: 8080, Protocol: 'tcp' }] } }),
        /^EndpointSpec: duplicate published ports provided \(8080\/tcp in Ports\[0\] and Ports\[1\]\)$/,
      ],
      ['a bad protocol', cliSpec('proto', { EndpointSpec: { Ports: [{ TargetPort: 80, Protocol: 'icmp' }] } }), /^invalid protocol \(EndpointSpec\.Ports\[0\]\.Protocol\) "icmp": must be one of tcp, udp, sctp$/],
      ['ingress ports with dnsrr', cliSpec('dnsrr', { EndpointSpec: { Mode: 'dnsrr', Ports: [{ TargetPort: 80, PublishedPort: 80 }] } }), /port published with ingress mode can't be used with dnsrr mode/],
      [
        'an invalid constraint',
        cliSpec('cons', { TaskTemplate: { ContainerSpec: { Image: 'nginx' }, Placement: { Constraints: ['node.zone==a'] } } }),
        /^TaskTemplate\.Placement: invalid placement constraint 'node\.zone==a': unknown key 'node\.zone'/,
      ],
      [
        'a duplicate mount point',
        cliSpec('mounts', { TaskTemplate: { ContainerSpec: { Image: 'nginx', Mounts: [{ Type: 'volume', Target: '/d' }, { Type: 'tmpfs', Target: '/d' }] } } }),
        /^ContainerSpec: duplicate mount point: \/d$/,
      ],
      ['an unknown restart condition', cliSpec('restart', { TaskTemplate: { ContainerSpec: { Image: 'nginx' }, RestartPolicy: { Condition: 'always' } } }), /invalid restart condition .*"always": must be one of none, on-failure, any/],
      ['a negative update delay', cliSpec('delay', { UpdateConfig: { Delay: -1 } }), /^TaskSpec: update-delay cannot be negative/],
      ['too little memory', cliSpec('mem', { TaskTemplate: { ContainerSpec: { Image: 'nginx' }, Resources: { Limits: { MemoryBytes: 1000 } } } }), /^invalid memory value 1000: Must be at least 4MiB$/],
      ['a missing network', cliSpec('nonet', { TaskTemplate: { ContainerSpec: { Image: 'nginx' }, Networks: [{ Target: 'nosuchnet' }] } }), /^network nosuchnet not found/],
      [
        'a missing secret',
        cliSpec('nosecret', { TaskTemplate: { ContainerSpec: { Image: 'nginx', Secrets: [{ SecretID: 'abc', SecretName: 's9', File: { Name: 's9', UID: '0', GID: '0', Mode: 292 } }] } } }),
        /^secret not found: s9 \(abc\)$/,
      ],
    ];
    for (const [what, spec, message] of bad) {
      it(`refuses ${what} with a message naming it`, async () => {
        const err = await refusal(api.createService(spec));
        expect(err.status).toBe('invalid-argument');
        expect(err.message).toMatch(message);
      });
    }

    it('refuses an ingress port another service publishes, and a mode change', async () => {
      // What swarm init makes: without it, an ingress-mode port is refused (swarmkit's FailedPrecondition).
      const noMesh = await refusal(api.createService(cliSpec('porta', { EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 9090 }] } })));
      expect([noMesh.status, noMesh.message]).toEqual(['failed-precondition', 'service needs ingress network, but no ingress network is present']);
      await api.createNetwork({ Name: 'ingress', Ingress: true, Labels: { 'com.docker.swarm.internal': 'true' } });
      const a = await api.createService(cliSpec('porta', { EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 9090, Protocol: 'tcp', PublishMode: 'ingress' }] } }));
      const err = await refusal(api.createService(cliSpec('portb', { EndpointSpec: { Ports: [{ TargetPort: 81, PublishedPort: 9090 }] } })));
      expect(err.message).toBe(`port '9090' is already in use by service 'porta' (${a.ID}) as an ingress port`);
      // The same port over udp is another port; updating the owner itself is fine.
      await api.createService(cliSpec('portc', { EndpointSpec: { Ports: [{ TargetPort: 81, PublishedPort: 9090, Protocol: 'udp' }] } }));
      await api.updateService(a.ID, a.Version.Index, { ...a.Spec, Labels: { x: 'y' } });
      const cur = api.getService(a.ID);
      const mode = await refusal(api.updateService(a.ID, cur.Version.Index, { ...cur.Spec, Mode: { Global: {} } }));
      expect(mode.message).toMatch(/^service mode change is not allowed \(Replicated → Global\)/);
    });
  });

  describe('secrets and configs', () => {
    it('secret data is never returned: not by create, get, list or update', async () => {
      const canary = 'canary-s3cr3t-value';
      const created = await api.createSecret({ Name: 's1', Labels: {}, Data: b64(canary) });
      const reads = [created, api.getSecret('s1'), api.getSecret(created.ID), ...api.listSecrets(), await api.updateSecret('s1', created.Version.Index, { Name: 's1', Labels: { k: 'v' } })];
      for (const r of reads) {
        expect(r.Spec.Data).toBeUndefined();
        expect(JSON.stringify(r)).not.toContain(b64(canary));
        expect(JSON.stringify(r)).not.toContain(canary);
      }
      // …while the store keeps it for the dispatcher.
      expect(store.get('secret', created.ID)?.Spec.Data).toBe(b64(canary));
      expect(api.getSecret('s1').Spec.Labels).toEqual({ k: 'v' });
    });

    it('secret size, name and update rules', async () => {
      const big = await refusal(api.createSecret({ Name: 'big', Data: Buffer.alloc(MAX_SECRET_BYTES).toString('base64') }));
      expect(big.message).toBe('secret data must be larger than 0 and less than 512000 bytes (got 512000)');
      await api.createSecret({ Name: 'almost-big', Data: Buffer.alloc(MAX_SECRET_BYTES - 1, 1).toString('base64') });
      const empty = await refusal(api.createSecret({ Name: 'empty', Data: '' }));
      expect(empty.message).toMatch(/^secret data must be larger than 0/);
      const name = await refusal(api.createSecret({ Name: '-bad', Data: b64('x') }));
      expect(name.message).toMatch(/^invalid name, only 64 \[a-zA-Z0-9-_.\] characters allowed, and the start and end character must be \[a-zA-Z0-9\]/);
      const dup = await refusal(api.createSecret({ Name: 'almost-big', Data: b64('x') }));
      expect(dup.message).toBe('name conflicts with an existing object: secret almost-big already exists');
      const s = api.getSecret('almost-big');
      const change = await refusal(api.updateSecret(s.ID, s.Version.Index, { Name: 'almost-big', Data: b64('other') }));
      expect(change.message).toBe('only updates to Labels are allowed (secret Data cannot change)');
      const rename = await refusal(api.updateSecret(s.ID, s.Version.Index, { Name: 'renamed' }));
      expect(rename.message).toMatch(/^only updates to Labels are allowed \(Name cannot change/);
    });

    it('a secret in use cannot be removed; once unused it can', async () => {
      const s = await api.createSecret({ Name: 'used', Data: b64('pw') });
      await api.createService(
        cliSpec('user', { TaskTemplate: { ContainerSpec: { Image: 'nginx', Secrets: [{ SecretID: s.ID, SecretName: 'used', File: { Name: 'used', UID: '0', GID: '0', Mode: 292 } }] } } }),
      );
      const err = await refusal(api.removeSecret('used'));
      expect(err.message).toBe("secret 'used' is in use by the following service: user");
      await api.removeService('user');
      await api.removeSecret('used');
      expect((await refusal(() => api.getSecret('used'))).status).toBe('not-found');
    });

    it('configs return their data and follow the same rules', async () => {
      const c = await api.createConfig({ Name: 'c1', Labels: {}, Data: b64('key: value\n') });
      expect(api.getConfig('c1').Spec.Data).toBe(b64('key: value\n'));
      const updated = await api.updateConfig('c1', c.Version.Index, { Name: 'c1', Labels: { a: 'b' }, Data: b64('key: value\n') });
      expect(updated.Spec.Labels).toEqual({ a: 'b' });
      expect((await refusal(api.createConfig({ Name: 'c2', Data: 'not base64!' }))).message).toMatch(/Data must be standard base64/);
      await api.removeConfig(c.ID);
      expect(api.listConfigs({ names: ['c1'] })).toEqual([]);
    });
  });

  describe('networks', () => {
    it('create, refuse encrypted / other drivers / bad subnets, remove only when unused', async () => {
      const net = await api.createNetwork({ Name: 'net1', DriverConfiguration: { Name: 'overlay' }, IPAMOptions: { Configs: [{ Subnet: '10.0.9.0/24', Gateway: '10.0.9.1' }] } });
      expect(api.getNetwork('net1').ID).toBe(net.ID);
      const enc = await refusal(api.createNetwork({ Name: 'enc', DriverConfiguration: { Name: 'overlay', Options: { encrypted: '' } } }));
      expect(enc.status).toBe('invalid-argument');
      expect(enc.message).toMatch(/^network enc: --opt encrypted is not supported/);
      expect((await refusal(api.createNetwork({ Name: 'br', DriverConfiguration: { Name: 'bridge' } }))).message).toMatch(/network driver "bridge" is not supported/);
      expect((await refusal(api.createNetwork({ Name: 'sub', IPAMOptions: { Configs: [{ Subnet: '10.0.0.0/33' }] } }))).message).toMatch(/Subnet "10.0.0.0\/33" is not an IPv4 subnet/);
      expect((await refusal(api.createNetwork({ Name: 'gw', IPAMOptions: { Configs: [{ Subnet: '10.1.0.0/24', Gateway: '10.2.0.1' }] } }))).message).toMatch(/Gateway "10.2.0.1" is not an address of 10.1.0.0\/24/);
      expect((await refusal(api.createNetwork({ Name: 'net1' }))).status).toBe('already-exists');

      // A stack refers to the network by name; the reference still holds it.
      await api.createService(cliSpec('onnet', { TaskTemplate: { ContainerSpec: { Image: 'nginx' }, Networks: [{ Target: 'net1' }] } }));
      const inUse = await refusal(api.removeNetwork('net1'));
      expect(inUse.status).toBe('failed-precondition');
      expect(inUse.message).toBe('network net1 is in use by service onnet');
      const relabel = await api.updateNetwork('net1', net.Version.Index, { ...net.Spec, Labels: { team: 'a' } });
      expect(relabel.Spec.Labels).toEqual({ team: 'a' });
      expect((await refusal(api.updateNetwork('net1', relabel.Version.Index, { ...relabel.Spec, Internal: true }))).message).toMatch(/^only updates to Labels are allowed/);
      await api.removeService('onnet');
      await api.removeNetwork('net1');
    });

    it('services cannot attach to the ingress network explicitly', async () => {
      // `ingress` exists already (made by the ingress-port test above, as swarm init would).
      expect(api.getNetwork('ingress').Spec.Ingress).toBe(true);
      const err = await refusal(api.createService(cliSpec('ing', { TaskTemplate: { ContainerSpec: { Image: 'nginx' }, Networks: [{ Target: 'ingress' }] } })));
      expect(err.message).toBe('Service cannot be explicitly attached to the ingress network "ingress"');
      expect((await refusal(api.createNetwork({ Name: 'ingress2', Ingress: true }))).message).toMatch(/only one ingress network is allowed/);
    });
  });

  describe('nodes and tasks', () => {
    let manager: Node;
    let worker: Node;
    beforeAll(async () => {
      await store.update((tx) => {
        tx.create('node', {
          ID: 'm1m1m1m1m1m1m1m1m1m1m1m1m',
          Spec: { Role: 'manager', Availability: 'active', Labels: {} },
          Description: { Hostname: 'mgr' },
          Status: { State: 'ready', Addr: '127.0.0.1' },
          ManagerStatus: { Leader: true, Reachability: 'reachable', Addr: '127.0.0.1:2377' },
        });
        tx.create('node', { ID: 'w1w1w1w1w1w1w1w1w1w1w1w1w', Spec: { Role: 'worker', Availability: 'active' }, Description: { Hostname: 'wrk' }, Status: { State: 'ready' } });
      });
      manager = api.getNode('mgr');
      worker = api.getNode('wrk');
    });

    it('node update: availability drain, labels; bad values named; the last manager cannot be demoted', async () => {
      const drained = await api.updateNode('wrk', worker.Version.Index, { Labels: { zone: 'a' }, Role: 'worker', Availability: 'drain' });
      expect(drained.Spec).toEqual({ Labels: { zone: 'a' }, Role: 'worker', Availability: 'drain' });
      expect(api.listNodes({ labels: { zone: 'a' } }).map((n) => n.ID)).toEqual([worker.ID]);
      expect(api.listNodes({ roles: ['manager'] }).map((n) => n.ID)).toEqual([manager.ID]);
      const bad = await refusal(api.updateNode('wrk', drained.Version.Index, { Role: 'worker', Availability: 'sleep' }));
      expect(bad.message).toBe('invalid node availability (Availability) "sleep": must be one of active, pause, drain');
      expect((await refusal(api.updateNode('wrk', drained.Version.Index, { Role: 'boss', Availability: 'active' }))).message).toMatch(/invalid node role \(Role\) "boss"/);
      expect((await refusal(api.updateNode('wrk', worker.Version.Index, { Role: 'worker', Availability: 'active' }))).message).toBe('update out of sequence');
      const demote = await refusal(api.updateNode('mgr', manager.Version.Index, { Role: 'worker', Availability: 'active' }));
      expect(demote.status).toBe('failed-precondition');
      expect(demote.message).toBe('attempting to demote the last manager of the swarm');
    });

    it('node rm: a manager must be demoted first; a ready worker needs force; then its certificate is refused', async () => {
      const mgr = await refusal(api.removeNode('mgr', { force: true }));
      expect(mgr.message).toBe(`node ${manager.ID} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`);
      const ready = await refusal(api.removeNode('wrk'));
      expect(ready.message).toBe(`node ${worker.ID} is not down and can't be removed`);
      const caData = await (await ClusterCA.create({ nowMs: Date.now() })).export();
      await store.update((tx) => tx.create('cluster', { ID: 'c1c1c1c1c1c1c1c1c1c1c1c1c', Spec: { Name: 'default' }, ShoalCA: caData } as never));
      await api.removeNode('wrk', { force: true });
      expect((await refusal(() => api.getNode(worker.ID))).message).toBe(`node ${worker.ID} not found`);
      const raw = store.find('cluster')[0] as StoredCluster;
      expect(raw.RemovedNodes?.map((r) => r.ID)).toEqual([worker.ID]);
      expect(api.getCluster()).not.toHaveProperty('RemovedNodes');
      await store.update((tx) => tx.delete('cluster', raw.ID));
    });

    it('tasks: get and list by service, node and desired state', async () => {
      const svc = await api.createService(cliSpec('tasked'));
      await store.update((tx) => {
        for (const [slot, node, desired] of [
          [1, manager.ID, 'running'],
          [2, manager.ID, 'shutdown'],
          [3, 'elsewhere', 'running'],
        ] as const) {
          const t: Omit<Task, 'ID' | 'Version' | 'CreatedAt' | 'UpdatedAt'> = {
            Spec: svc.Spec.TaskTemplate,
            ServiceID: svc.ID,
            Slot: slot,
            NodeID: node,
            DesiredState: desired,
            Status: { Timestamp: new Date().toISOString(), State: 'new', Message: 'created' },
          };
          tx.create('task', t);
        }
      });
      expect(api.listTasks({ serviceIds: [svc.ID] })).toHaveLength(3);
      expect(api.listTasks({ serviceIds: [svc.ID], nodeIds: [manager.ID] }).map((t) => t.Slot).sort()).toEqual([1, 2]);
      expect(api.listTasks({ nodeIds: [manager.ID], desiredStates: ['running'] }).map((t) => t.Slot)).toEqual([1]);
      expect(api.listTasks({ names: ['tasked.3'] }).map((t) => t.NodeID)).toEqual(['elsewhere']);
      const one = api.listTasks({ serviceIds: [svc.ID] })[0]!;
      expect(api.getTask(one.ID.slice(0, 10)).ID).toBe(one.ID);
      expect((await refusal(() => api.getTask('nosuchtask'))).message).toBe('task nosuchtask not found');
    });
  });

  describe('cluster', () => {
    let clusterId: string;
    beforeAll(async () => {
      const ca = await ClusterCA.create({ nowMs: Date.now() });
      const caData = await ca.export();
      const { result } = await store.update((tx) =>
        tx.create('cluster', {
          Spec: { Name: 'default', Orchestration: { TaskHistoryRetentionLimit: 5 }, CAConfig: { NodeCertExpiry: 7776000000000000 }, EncryptionConfig: { AutoLockManagers: false } },
          JoinTokens: { Worker: ca.joinTokens.worker, Manager: ca.joinTokens.manager },
          ShoalCA: caData,
        } as never),
      );
      clusterId = result.ID;
    });

    it('reads never carry the CA data or the unlock key', () => {
      const c = api.getCluster();
      expect(c.ID).toBe(clusterId);
      expect(c).not.toHaveProperty('ShoalCA');
      expect(c).not.toHaveProperty('ManagerUnlockKey');
      expect(c.JoinTokens?.Worker).toMatch(/^SWMTKN-1-/);
      expect(api.listClusters().every((x) => !('ShoalCA' in x))).toBe(true);
    });

    it('swarm update: task history, validation of expiry and heartbeat', async () => {
      const c = api.getCluster();
      const updated = await api.updateCluster(undefined, c.Version.Index, { ...c.Spec, Orchestration: { TaskHistoryRetentionLimit: 3 } });
      expect(updated.Spec.Orchestration?.TaskHistoryRetentionLimit).toBe(3);
      const expiry = await refusal(api.updateCluster(undefined, updated.Version.Index, { ...updated.Spec, CAConfig: { NodeCertExpiry: 30 * 60 * 1e9 } }));
      expect(expiry.message).toMatch(/^minimum certificate expiry time is: 1h0m0s/);
      const hb = await refusal(api.updateCluster(undefined, updated.Version.Index, { ...updated.Spec, Dispatcher: { HeartbeatPeriod: -5 } }));
      expect(hb.message).toMatch(/^heartbeat time period cannot be a negative duration/);
      const unknown = await refusal(api.updateCluster(undefined, updated.Version.Index, { ...updated.Spec, Autolock: true }));
      expect(unknown.message).toMatch(/^unknown field SwarmSpec\.Autolock/);
      expect((await refusal(api.updateCluster(undefined, c.Version.Index, updated.Spec))).message).toBe('update out of sequence');
    });

    it('join-token rotation changes only the rotated token, through the CA data; expiry reaches the CA too', async () => {
      const before = api.getCluster();
      const after = await api.updateCluster(undefined, before.Version.Index, { ...before.Spec, CAConfig: { NodeCertExpiry: 2 * 3600 * 1e9 } }, { workerToken: true });
      expect(after.JoinTokens?.Worker).not.toBe(before.JoinTokens?.Worker);
      expect(after.JoinTokens?.Manager).toBe(before.JoinTokens?.Manager);
      const ca = await ClusterCA.restore((store.get('cluster', clusterId) as StoredCluster).ShoalCA as never);
      expect(ca.joinTokens.worker).toBe(after.JoinTokens?.Worker);
      expect(ca.expiryPolicy.expiryMs).toBe(2 * 3600 * 1000);
    });

    it('autolock: on makes an unlock key, rotate replaces it, off removes it', async () => {
      let c = api.getCluster();
      expect(api.getUnlockKey().unlockKey).toBe('');
      const norotate = await refusal(api.updateCluster(undefined, c.Version.Index, c.Spec, { unlockKey: true }));
      expect(norotate.message).toMatch(/^cannot rotate the unlock key: autolock is not enabled/);
      c = await api.updateCluster(undefined, c.Version.Index, { ...c.Spec, EncryptionConfig: { AutoLockManagers: true } });
      const key1 = api.getUnlockKey().unlockKey;
      expect(key1).toMatch(/^SWMKEY-1-[A-Za-z0-9+/]{43}=$/);
      expect(JSON.stringify(c)).not.toContain(key1);
      c = await api.updateCluster(undefined, c.Version.Index, c.Spec);
      expect(api.getUnlockKey().unlockKey).toBe(key1); // unchanged without --rotate
      c = await api.updateCluster(undefined, c.Version.Index, c.Spec, { unlockKey: true });
      const key2 = api.getUnlockKey().unlockKey;
      expect(key2).toMatch(/^SWMKEY-1-/);
      expect(key2).not.toBe(key1);
      await api.updateCluster(undefined, c.Version.Index, { ...c.Spec, EncryptionConfig: { AutoLockManagers: false } });
      expect(api.getUnlockKey().unlockKey).toBe('');
    });
  });

  describe('errors from the write path', () => {
    it('no leader → unavailable; a known leader → unavailable naming it', async () => {
      expect(toControlError(new ProposalRejectedError('notLeader', null)).status).toBe('unavailable');
      expect(toControlError(new ProposalRejectedError('notLeader', null)).message).toMatch(/^no leader/);
      const hinted = toControlError(new ProposalRejectedError('notLeader', 7 as never));
      expect([hinted.code, hinted.leaderId]).toEqual(['ERR_CONTROL_NOT_LEADER', '7']);
      const follower = new ControlApi({
        store,
        update: () => Promise.reject(Object.assign(new Error('no leader: the swarm has no reachable leader right now'), { code: 'NO_LEADER' })),
      });
      const err = await refusal(follower.createSecret({ Name: 'while-no-leader', Data: b64('x') }));
      expect([err.status, err.message]).toEqual(['unavailable', 'no leader: the swarm has no reachable leader right now']);
    });
  });
});
