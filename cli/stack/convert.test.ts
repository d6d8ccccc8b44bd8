// Compose → swarm specs: what `stack deploy` would send, from real compose text.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interpolate, parseCompose } from './compose.js';
import { convertPorts, convertStack, shellSplit } from './convert.js';
import { durationNs, nanoCpus, sizeBytes } from './units.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-stack-'));
  await writeFile(join(dir, 'db_pass.txt'), 's3cret\n');
  await writeFile(join(dir, 'web.env'), '# comment\nFROM_FILE=1\nQUOTED="a b"\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const COMPOSE = `
version: "3.9"
services:
  web:
    image: nginx:alpine
    command: sh -c "echo 'hi there' && sleep 1"
    environment:
      B: two
      A: \${GREETING:-hello}
    env_file: web.env
    labels: [container.label=x]
    ports: ["8080:80", "9000-9001:9000-9001/udp", {target: 443, published: 8443, mode: host}]
    networks:
      front:
        aliases: [www]
    secrets: [db_pass, {source: db_pass, target: /run/other, mode: 0400}]
    configs: [app_conf]
    volumes: ["./data:/data:ro", "cache:/cache"]
    stop_grace_period: 1m30s
    healthcheck: {test: "wget -q localhost", interval: 10s, retries: 3}
    build: .
    container_name: web1
    x-custom: ignored
    deploy:
      replicas: 2
      labels: {tier: frontend}
      resources: {limits: {cpus: "0.5", memory: 64M}, reservations: {memory: 16m}}
      placement: {constraints: [node.role==worker], preferences: [{spread: node.labels.zone}], max_replicas_per_node: 1}
      update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback}
      rollback_config: {parallelism: 1, monitor: 5s}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
      endpoint_mode: vip
      bogus: 1
  api:
    image: redis:7
    deploy: {mode: global}
    restart: always
networks:
  front: {driver: overlay, attachable: true, labels: {team: a}}
secrets:
  db_pass: {file: ./db_pass.txt}
configs:
  app_conf: {content: "key: value"}
volumes:
  cache: {}
`;

describe('convertStack', () => {
  it('translates services, networks, secrets, configs and deploy settings, labelled with the namespace', () => {
    const plan = convertStack(parseCompose(COMPOSE, 'compose.yml', dir, { GREETING: undefined }), 'app');
    expect(plan.warnings).toEqual([
      'Ignoring unsupported options: services.web.build, services.web.container_name',
      'Ignoring unknown options: services.web.deploy.bogus',
    ]);
    expect(plan.networks.map((n) => [n.key, n.name, n.external])).toEqual([
      ['default', 'app_default', false],
      ['front', 'app_front', false],
    ]);
    expect(plan.networks[1]!.create).toMatchObject({ Name: 'app_front', Driver: 'overlay', Attachable: true, Labels: { team: 'a', 'com.docker.stack.namespace': 'app' } });
    expect(plan.secrets).toEqual([
      { key: 'db_pass', name: 'app_db_pass', external: false, spec: { Name: 'app_db_pass', Labels: { 'com.docker.stack.namespace': 'app' }, Data: Buffer.from('s3cret\n').toString('base64') } },
    ]);
    expect(plan.configs[0]!.spec).toMatchObject({ Name: 'app_app_conf', Data: Buffer.from('key: value').toString('base64') });

    const api = plan.services.find((s) => s.key === 'api')!;
    expect(api.spec).toMatchObject({
      Name: 'app_api',
      Mode: { Global: {} },
      Labels: { 'com.docker.stack.image': 'redis:7', 'com.docker.stack.namespace': 'app' },
      TaskTemplate: { RestartPolicy: { Condition: 'any' }, Networks: [{ Target: 'app_default', Aliases: ['api'] }] },
      EndpointSpec: {},
    });

    const web = plan.services.find((s) => s.key === 'web')!;
    expect(web.name).toBe('app_web');
    expect(web.spec['Mode']).toEqual({ Replicated: { Replicas: 2 } });
    expect(web.spec['Labels']).toEqual({ tier: 'frontend', 'com.docker.stack.image': 'nginx:alpine', 'com.docker.stack.namespace': 'app' });
    const tt = web.spec['TaskTemplate'] as Record<string, unknown>;
    expect(tt['ContainerSpec']).toEqual({
      Image: 'nginx:alpine',
      Labels: { 'container.label': 'x', 'com.docker.stack.namespace': 'app' },
      Args: ['sh', '-c', "echo 'hi there' && sleep 1"],
      Env: ['A=hello', 'B=two', 'FROM_FILE=1', 'QUOTED=a b'],
      Mounts: [
        { Type: 'bind', Source: join(dir, 'data'), Target: '/data', ReadOnly: true },
        { Type: 'volume', Source: 'app_cache', Target: '/cache', VolumeOptions: { Labels: { 'com.docker.stack.namespace': 'app' } } },
      ],
      StopGracePeriod: 90_000_000_000,
      Healthcheck: { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 10_000_000_000, Retries: 3 },
      Secrets: [
        { File: { Name: 'db_pass', UID: '0', GID: '0', Mode: 0o444 }, SecretName: 'app_db_pass' },
        { File: { Name: '/run/other', UID: '0', GID: '0', Mode: 0o400 }, SecretName: 'app_db_pass' },
      ],
      Configs: [{ File: { Name: '/app_conf', UID: '0', GID: '0', Mode: 0o444 }, ConfigName: 'app_app_conf' }],
    });
    expect(tt['Resources']).toEqual({ Limits: { NanoCPUs: 500_000_000, MemoryBytes: 64 * 1024 * 1024 }, Reservations: { MemoryBytes: 16 * 1024 * 1024 } });
    expect(tt['Placement']).toEqual({ Constraints: ['node.role==worker'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }], MaxReplicas: 1 });
    expect(tt['RestartPolicy']).toEqual({ Condition: 'on-failure', Delay: 5_000_000_000, MaxAttempts: 3, Window: 120_000_000_000 });
    expect(tt['Networks']).toEqual([{ Target: 'app_front', Aliases: ['web', 'www'] }]);
    expect(web.spec['UpdateConfig']).toEqual({ Parallelism: 2, Delay: 10_000_000_000, FailureAction: 'rollback', MaxFailureRatio: 0, Order: 'start-first' });
    expect(web.spec['RollbackConfig']).toEqual({ Parallelism: 1, Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: '' });
    expect(web.spec['EndpointSpec']).toEqual({
      Mode: 'vip',
      Ports: [
        { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
        { Protocol: 'udp', TargetPort: 9000, PublishedPort: 9000, PublishMode: 'ingress' },
        { Protocol: 'udp', TargetPort: 9001, PublishedPort: 9001, PublishMode: 'ingress' },
        { Protocol: 'tcp', TargetPort: 443, PublishedPort: 8443, PublishMode: 'host' },
      ],
    });
  });

  it('uses external and explicitly named objects as they are', () => {
    const text = `
services:
  s: {image: busybox, networks: [ext], secrets: [token]}
networks:
  ext: {external: true, name: shared-net}
secrets:
  token: {external: true}
`;
    const plan = convertStack(parseCompose(text, 'c.yml', dir, {}), 'x');
    expect(plan.networks).toEqual([{ key: 'ext', name: 'shared-net', external: true }]);
    expect(plan.secrets).toEqual([{ key: 'token', name: 'token', external: true }]);
    expect(((plan.services[0]!.spec['TaskTemplate'] as Record<string, unknown>)['Networks'] as unknown[])[0]).toEqual({ Target: 'shared-net', Aliases: ['s'] });
  });

  it('refuses what cannot be deployed, saying where', () => {
    const bad = (text: string, ns = 'app'): string => {
      try {
        convertStack(parseCompose(text, 'c.yml', dir, {}), ns);
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    };
    expect(bad('services:\n  s: {build: .}\n')).toBe('services.s: image is required (stack deploy does not build images)');
    expect(bad('services:\n  s: {image: a, deploy: {mode: global, replicas: 2}}\n')).toBe('services.s.deploy: replicas can only be used with replicated mode');
    expect(bad('services:\n  s: {image: a, networks: [nope]}\n')).toBe('service network nope is not declared in the top-level networks');
    expect(bad('services:\n  s: {image: a, secrets: [nope]}\n')).toBe('services.s.secrets[0]: secret nope is not declared in the top-level secrets');
    expect(bad('services:\n  s: {image: a, stop_grace_period: soon}\n')).toMatch(/^services\.s\.stop_grace_period: invalid duration "soon"/);
    expect(bad('services:\n  s: {image: a}\n', 'bad name')).toMatch(/^invalid stack name "bad name"/);
    expect(bad('version: "3"\n')).toBe('c.yml: no services defined (a "services:" mapping is required)');
    expect(bad('services: [\n')).toMatch(/^c\.yml: invalid YAML: /);
  });
});

describe('compose values', () => {
  it('interpolates variables as docker does', () => {
    const env = { A: 'x', E: '' };
    expect(interpolate('$A-${A}-$${A}-${B:-def}-${E:-emp}-${E-set}', env, 'k')).toBe('x-x-${A}-def-emp-');
    expect(() => interpolate('${B:?needs B}', env, 'services.s.image')).toThrow('services.s.image: required variable B is missing a value: needs B');
  });

  it('splits commands like a shell', () => {
    expect(shellSplit(`sh -c "echo \\"a b\\"" 'c d' e\\ f ""`)).toEqual(['sh', '-c', 'echo "a b"', 'c d', 'e f', '']);
  });

  it('parses durations, sizes, CPUs and ports', () => {
    expect(durationNs('1h2m3.5s', 'd')).toBe(3_723_500_000_000);
    expect(durationNs('250ms', 'd')).toBe(250_000_000);
    expect(sizeBytes('1.5g', 's')).toBe(1.5 * 1024 ** 3);
    expect(sizeBytes('512', 's')).toBe(512);
    expect(nanoCpus('2', 'c')).toBe(2e9);
    expect(convertPorts(['53:53/udp', '3000'], 'ports')).toEqual([
      { Protocol: 'udp', TargetPort: 53, PublishedPort: 53, PublishMode: 'ingress' },
      { Protocol: 'tcp', TargetPort: 3000, PublishMode: 'ingress' },
    ]);
  });
});
