// `shoal version` and `shoal info` output, laid out like docker's.
import { API_VERSION, SHOAL_VERSION, goArch } from '../version.js';

type Obj = Readonly<Record<string, unknown>>;

function obj(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}
function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v);
}
function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v ?? 0);
}

/** The client half of `version` (and what `--format '{{.Client...}}'` sees). */
export function clientVersion(): Obj {
  return {
    Version: SHOAL_VERSION,
    ApiVersion: API_VERSION,
    DefaultAPIVersion: API_VERSION,
    GoVersion: `node ${process.version}`,
    Os: 'linux',
    Arch: goArch(),
  };
}

function kv(lines: string[], indent: string, width: number, key: string, value: string): void {
  lines.push(`${indent}${`${key}:`.padEnd(width)}${value}`);
}

export function formatVersion(client: Obj, server: Obj | undefined): string {
  const lines: string[] = ['Client:'];
  kv(lines, ' ', 19, 'Version', str(client['Version']));
  kv(lines, ' ', 19, 'API version', str(client['ApiVersion']));
  kv(lines, ' ', 19, 'Node.js version', process.version);
  kv(lines, ' ', 19, 'OS/Arch', `${str(client['Os'])}/${str(client['Arch'])}`);
  if (server !== undefined) {
    lines.push('', `Server: ${str(obj(server['Platform'])['Name'])}`.trimEnd());
    const components = Array.isArray(server['Components']) ? (server['Components'] as unknown[]).map(obj) : [];
    for (const c of components) {
      lines.push(` ${str(c['Name'])}:`);
      const d = obj(c['Details']);
      kv(lines, '  ', 18, 'Version', str(c['Version']));
      if (str(c['Name']) === 'Engine') {
        kv(lines, '  ', 18, 'API version', `${str(server['ApiVersion'])} (minimum version ${str(server['MinAPIVersion'])})`);
        kv(lines, '  ', 18, 'Kernel version', str(d['KernelVersion'] ?? server['KernelVersion']));
        kv(lines, '  ', 18, 'OS/Arch', `${str(server['Os'])}/${str(server['Arch'])}`);
        kv(lines, '  ', 18, 'Experimental', str(d['Experimental'] ?? 'false'));
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

/** go-units HumanDuration, as docker prints durations in `info`. */
export function humanDuration(ns: number): string {
  const seconds = Math.floor(ns / 1e9);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(seconds / 3600);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

function bytesHuman(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(2)}${units[i]}`;
}

function swarmLines(swarm: Obj): string[] {
  const state = str(swarm['LocalNodeState']) || 'inactive';
  const lines = [` Swarm: ${state}`];
  if (state === 'inactive' || state === 'locked') return lines;
  const put = (key: string, value: string, indent = '  '): void => void lines.push(`${indent}${key}: ${value}`);
  put('NodeID', str(swarm['NodeID']));
  if (str(swarm['Error']) !== '') put('Error', str(swarm['Error']));
  put('Is Manager', String(swarm['ControlAvailable'] === true));
  const cluster = swarm['Cluster'] !== undefined && swarm['Cluster'] !== null ? obj(swarm['Cluster']) : undefined;
  if (swarm['ControlAvailable'] === true && cluster !== undefined) {
    const spec = obj(cluster['Spec']);
    put('ClusterID', str(cluster['ID']));
    put('Managers', String(num(swarm['Managers'])));
    put('Nodes', String(num(swarm['Nodes'])));
    const pools = Array.isArray(cluster['DefaultAddrPool']) ? (cluster['DefaultAddrPool'] as unknown[]).map(str) : [];
    put('Default Address Pool', pools.join('  '));
    put('SubnetSize', String(num(cluster['SubnetSize'])));
    put('Data Path Port', String(num(cluster['DataPathPort'])));
    lines.push('  Orchestration:');
    put('Task History Retention Limit', String(num(obj(spec['Orchestration'])['TaskHistoryRetentionLimit'])), '   ');
    const raft = obj(spec['Raft']);
    lines.push('  Raft:');
    put('Snapshot Interval', String(num(raft['SnapshotInterval'])), '   ');
    put('Number of Old Snapshots to Retain', String(num(raft['KeepOldSnapshots'])), '   ');
    put('Heartbeat Tick', String(num(raft['HeartbeatTick'])), '   ');
    put('Election Tick', String(num(raft['ElectionTick'])), '   ');
    lines.push('  Dispatcher:');
    put('Heartbeat Period', humanDuration(num(obj(spec['Dispatcher'])['HeartbeatPeriod'])), '   ');
    const ca = obj(spec['CAConfig']);
    lines.push('  CA Configuration:');
    put('Expiry Duration', humanDuration(num(ca['NodeCertExpiry'])), '   ');
    put('Force Rotate', String(num(ca['ForceRotate'])), '   ');
    put('Autolock Managers', String(obj(spec['EncryptionConfig'])['AutoLockManagers'] === true));
    put('Root Rotation In Progress', String(cluster['RootRotationInProgress'] === true));
  }
  put('Node Address', str(swarm['NodeAddr']));
  const managers = Array.isArray(swarm['RemoteManagers']) ? (swarm['RemoteManagers'] as unknown[]).map(obj) : [];
  if (managers.length > 0) {
    lines.push('  Manager Addresses:');
    for (const m of [...managers].sort((a, b) => str(a['Addr']).localeCompare(str(b['Addr'])))) lines.push(`   ${str(m['Addr'])}`);
  }
  return lines;
}

export function formatInfo(info: Obj): string {
  const lines: string[] = ['Client:', ` Version:    ${SHOAL_VERSION}`, '', 'Server:'];
  const put = (key: string, value: string): void => void lines.push(` ${key}: ${value}`);
  put('Server Version', str(info['ServerVersion']));
  lines.push(...swarmLines(obj(info['Swarm'])));
  put('Kernel Version', str(info['KernelVersion']));
  put('Operating System', str(info['OperatingSystem']));
  put('OSType', str(info['OSType']));
  put('Architecture', str(info['Architecture']));
  put('CPUs', String(num(info['NCPU'])));
  put('Total Memory', bytesHuman(num(info['MemTotal'])));
  put('Name', str(info['Name']));
  put('ID', str(info['ID']));
  put('Shoal Root Dir', str(info['DockerRootDir']));
  put('Debug Mode', String(info['Debug'] === true));
  const registry = obj(info['RegistryConfig']);
  const insecure = [
    ...Object.values(obj(registry['IndexConfigs']))
      .map(obj)
      .filter((c) => c['Secure'] === false)
      .map((c) => str(c['Name'])),
    ...(Array.isArray(registry['InsecureRegistryCIDRs']) ? (registry['InsecureRegistryCIDRs'] as unknown[]).map(str) : []),
  ];
  if (insecure.length > 0) {
    lines.push(' Insecure Registries:');
    for (const r of insecure) lines.push(`  ${r}`);
  }
  const mirrors = Array.isArray(registry['Mirrors']) ? (registry['Mirrors'] as unknown[]).map(str) : [];
  if (mirrors.length > 0) {
    lines.push(' Registry Mirrors:');
    for (const m of mirrors) lines.push(`  ${m}/`);
  }
  put('Live Restore Enabled', String(info['LiveRestoreEnabled'] === true));
  return `${lines.join('\n')}\n`;
}
