import { describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { formatInfo, formatVersion, humanDuration } from './system.js';
import { formatTable } from './table.js';
import { renderTemplate } from './template.js';

describe('--format templates', () => {
  const data = { Server: { ApiVersion: '1.50', Components: [{ Name: 'Engine' }] }, Swarm: { LocalNodeState: 'inactive', RemoteManagers: null }, Labels: ['a', 'b'], Name: 'web' };

  it('reads fields, case-insensitively like docker users expect (APIVersion finds ApiVersion)', () => {
    expect(renderTemplate('{{.Server.APIVersion}}', data)).toBe('1.50');
    expect(renderTemplate('{{.Swarm.LocalNodeState}}', data)).toBe('inactive');
    expect(renderTemplate('{{ .Name }}!', data)).toBe('web!');
  });

  it('has json, upper, join, len, and pipes', () => {
    expect(renderTemplate('{{json .Swarm}}', data)).toBe('{"LocalNodeState":"inactive","RemoteManagers":null}');
    expect(renderTemplate('{{.Name | upper}}', data)).toBe('WEB');
    expect(renderTemplate('{{join .Labels ","}}', data)).toBe('a,b');
    expect(renderTemplate('{{len .Labels}}', data)).toBe('2');
    expect(renderTemplate('{{.Swarm.RemoteManagers}}', data)).toBe('<nil>');
  });

  it('has index, split and pad as docker does', () => {
    const svc = { Spec: { Labels: { 'com.docker.stack.namespace': 'app' } }, Ports: ['80', '443'] };
    expect(renderTemplate('{{index .Spec.Labels "com.docker.stack.namespace"}}', svc)).toBe('app');
    expect(renderTemplate('[{{index .Spec.Labels "missing"}}]', svc)).toBe('[]');
    expect(renderTemplate('{{index .Ports 1}}', svc)).toBe('443');
    expect(renderTemplate('{{split "a:b" ":"}}', svc)).toBe('[a b]');
    expect(renderTemplate('{{pad "x" 1 2}}|', svc)).toBe(' x  |');
  });

  it('turns \\t and \\n into tab and newline', () => {
    expect(renderTemplate('{{.Name}}\\t{{.Name}}\\n', data)).toBe('web\tweb\n');
  });

  it('fails with a template error on unknown fields and functions', () => {
    expect(() => renderTemplate('{{.Nope}}', data)).toThrow(CliError);
    expect(() => renderTemplate('{{frob .Name}}', data)).toThrow(/function "frob" not defined/);
    expect(() => renderTemplate('{{.Name', data)).toThrow(/unclosed action/);
  });
});

describe('tables', () => {
  it('pads columns like Go tabwriter (min width 10, padding 3), last column unpadded', () => {
    expect(formatTable(['ID', 'NAME', 'REPLICAS'], [['abc', 'a-long-service-name', '1/1']])).toBe(
      'ID        NAME                  REPLICAS\n' + 'abc       a-long-service-name   1/1\n',
    );
  });
});

describe('version and info output', () => {
  it('prints client and server halves', () => {
    const text = formatVersion(
      { Version: '0.1.0', ApiVersion: '1.50', Os: 'linux', Arch: 'amd64' },
      { Platform: { Name: 'Shoal' }, Components: [{ Name: 'Engine', Version: '0.1.0', Details: { KernelVersion: '6.1', Experimental: 'false' } }], ApiVersion: '1.50', MinAPIVersion: '1.24', Os: 'linux', Arch: 'amd64' },
    );
    expect(text).toContain('Client:\n Version:           0.1.0\n API version:       1.50\n');
    expect(text).toContain('Server: Shoal\n Engine:\n  Version:          0.1.0\n  API version:      1.50 (minimum version 1.24)\n');
  });

  it("an inactive node's info says Swarm: inactive and nothing more about swarm", () => {
    const text = formatInfo({ ServerVersion: '0.1.0', Name: 'lab-m1', Swarm: { LocalNodeState: 'inactive', NodeID: '' }, RegistryConfig: { Mirrors: ['http://10.231.1.1:5000'], InsecureRegistryCIDRs: ['127.0.0.0/8'], IndexConfigs: {} } });
    expect(text).toContain(' Swarm: inactive\n Kernel Version');
    expect(text).toContain(' Name: lab-m1\n');
    expect(text).toContain(' Registry Mirrors:\n  http://10.231.1.1:5000/\n');
    expect(text).not.toContain('NodeID');
  });

  it("an active manager's info has docker's swarm block (from the dockerd 20.10 capture)", () => {
    const swarm = {
      NodeID: '0mrjdda6bf0kwsq101gemmdlo',
      NodeAddr: '192.0.2.2',
      LocalNodeState: 'active',
      ControlAvailable: true,
      Error: '',
      RemoteManagers: [{ NodeID: '0mrjdda6bf0kwsq101gemmdlo', Addr: '192.0.2.2:2377' }],
      Nodes: 1,
      Managers: 1,
      Cluster: {
        ID: 'ljpi3evqg3fzsg6oqtke8jexp',
        Spec: {
          Orchestration: { TaskHistoryRetentionLimit: 5 },
          Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 },
          Dispatcher: { HeartbeatPeriod: 5000000000 },
          CAConfig: { NodeCertExpiry: 7776000000000000 },
          EncryptionConfig: { AutoLockManagers: false },
        },
        RootRotationInProgress: false,
        DefaultAddrPool: ['10.0.0.0/8'],
        SubnetSize: 24,
        DataPathPort: 4789,
      },
    };
    const text = formatInfo({ Swarm: swarm });
    expect(text).toContain(
      [
        ' Swarm: active',
        '  NodeID: 0mrjdda6bf0kwsq101gemmdlo',
        '  Is Manager: true',
        '  ClusterID: ljpi3evqg3fzsg6oqtke8jexp',
        '  Managers: 1',
        '  Nodes: 1',
        '  Default Address Pool: 10.0.0.0/8',
        '  SubnetSize: 24',
        '  Data Path Port: 4789',
        '  Orchestration:',
        '   Task History Retention Limit: 5',
        '  Raft:',
        '   Snapshot Interval: 10000',
        '   Number of Old Snapshots to Retain: 0',
        '   Heartbeat Tick: 1',
        '   Election Tick: 10',
        '  Dispatcher:',
        '   Heartbeat Period: 5 seconds',
        '  CA Configuration:',
        '   Expiry Duration: 3 months',
        '   Force Rotate: 0',
        '  Autolock Managers: false',
        '  Root Rotation In Progress: false',
        '  Node Address: 192.0.2.2',
        '  Manager Addresses:',
        '   192.0.2.2:2377',
      ].join('\n'),
    );
  });

  it('durations read as docker prints them', () => {
    expect(humanDuration(5e9)).toBe('5 seconds');
    expect(humanDuration(7776000000000000)).toBe('3 months');
    expect(humanDuration(3600e9)).toBe('About an hour');
    expect(humanDuration(0)).toBe('Less than a second');
  });
});
