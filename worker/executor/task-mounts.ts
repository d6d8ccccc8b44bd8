// The spec's mounts (bind, named or anonymous local volume, tmpfs), its secrets and configs (files in a
// per-task tmpfs, bind-mounted one by one with their mode, uid and gid), and the /etc files Docker
// gives every container (hostname, hosts, resolv.conf), as OCI mounts.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { mountTmpfs } from './host-mounts.js';
import type { OciMount } from './oci-spec.js';
import type { ContainerSpec, DependencyGetter, FileTarget, MountSpec } from './types.js';
import { resolveInRoot } from './user.js';

const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const TMPFS_DEFAULT_MODE = 0o1777;
/** Docker's ceiling for one secret (500 KiB); the tmpfs is sized from the payloads. */
const SECRETS_TMPFS_MIN_BYTES = 1024 * 1024;
const DEFAULT_FILE_MODE = 0o444;
const COPY_TIMEOUT_MS = 60_000;

export class MountSpecError extends Error {
  override readonly name = 'MountSpecError';
  readonly code = 'ERR_MOUNT_SPEC';
}

export interface PreparedMounts {
  readonly mounts: OciMount[];
  /** Volume directories made for this task alone (anonymous volumes), removed with it. */
  readonly anonymousVolumes: string[];
}

function checkTarget(target: string): string {
  if (!target.startsWith('/')) throw new MountSpecError(`mount target ${JSON.stringify(target)} must be an absolute path`);
  const norm = posix.normalize(target);
  if (norm === '/') throw new MountSpecError('mount target cannot be /');
  return norm;
}

const depth = (p: string): number => p.split('/').filter((s) => s !== '').length;

async function isEmptyDir(dir: string): Promise<boolean> {
  return (await readdir(dir)).length === 0;
}

/** Copies the image's files at `target` into a new volume, as Docker does for an empty named volume. */
async function copyUp(rootfs: string, target: string, volumeData: string): Promise<void> {
  const src = await resolveInRoot(rootfs, target);
  const st = await stat(src).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) return;
  await new Promise<void>((resolve, reject) => {
    execFile('cp', ['-a', `${src}/.`, `${volumeData}/`], { timeout: COPY_TIMEOUT_MS }, (err, _o, stderr) => {
      if (err !== null) reject(new MountSpecError(`copy image content of ${target} into its volume: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

/**
 * OCI mounts for the spec's Mounts, parents before children. Named volumes live in
 * `volumesDir/<name>/_data` and outlive the task; anonymous ones in `volumesDir/<taskId>-anon-<n>`.
 */
export async function prepareSpecMounts(spec: ContainerSpec, taskId: string, rootfs: string, volumesDir: string): Promise<PreparedMounts> {
  const mounts: OciMount[] = [];
  const anonymousVolumes: string[] = [];
  const seen = new Set<string>();
  const specMounts = [...(spec.Mounts ?? [])].sort((a, b) => depth(a.Target) - depth(b.Target));
  for (const [i, m] of specMounts.entries()) {
    const target = checkTarget(m.Target);
    if (seen.has(target)) throw new MountSpecError(`duplicate mount target ${target}`);
    seen.add(target);
    const ro = m.ReadOnly === true ? ['ro'] : [];
    const type: MountSpec['Type'] = m.Type ?? 'volume';
    switch (type) {
      case 'bind': {
        const source = m.Source ?? '';
        if (!source.startsWith('/')) throw new MountSpecError(`invalid mount config for type "bind": source ${JSON.stringify(source)} must be an absolute host path`);
        if ((await stat(source).catch(() => undefined)) === undefined) throw new MountSpecError(`invalid mount config for type "bind": bind source path does not exist: ${source}`);
        mounts.push({ destination: target, type: 'bind', source, options: ['rbind', m.BindOptions?.Propagation ?? 'rprivate', ...ro] });
        break;
      }
      case 'volume': {
        const name = m.Source ?? '';
        if (name !== '' && !VOLUME_NAME.test(name)) throw new MountSpecError(`invalid volume name ${JSON.stringify(name)}: use letters, digits, _ . -`);
        const dir = name === '' ? join(volumesDir, `${taskId}-anon-${i}`) : join(volumesDir, name);
        const data = join(dir, '_data');
        await mkdir(data, { recursive: true, mode: 0o755 });
        if (name === '') anonymousVolumes.push(dir);
        if (m.VolumeOptions?.NoCopy !== true && (await isEmptyDir(data))) await copyUp(rootfs, target, data);
        mounts.push({ destination: target, type: 'bind', source: data, options: ['rbind', 'rprivate', ...ro] });
        break;
      }
      case 'tmpfs': {
        const size = m.TmpfsOptions?.SizeBytes;
        const mode = m.TmpfsOptions?.Mode ?? TMPFS_DEFAULT_MODE;
        const opts = ['nosuid', 'nodev', 'noexec', `mode=${mode.toString(8).padStart(4, '0')}`, ...(size !== undefined && size > 0 ? [`size=${size}`] : []), ...ro];
        mounts.push({ destination: target, type: 'tmpfs', source: 'tmpfs', options: opts });
        break;
      }
      default:
        throw new MountSpecError(`mount type ${JSON.stringify(type)} is not supported on Linux workers`);
    }
  }
  return { mounts, anonymousVolumes };
}

interface FileToWrite {
  readonly kind: 'secret' | 'config';
  readonly id: string;
  readonly name: string;
  readonly target: string;
  readonly file: FileTarget;
  readonly data: Uint8Array;
}

function numericId(s: string, what: string): number {
  if (s === '') return 0;
  if (!/^\d+$/.test(s)) throw new MountSpecError(`${what} ${JSON.stringify(s)} must be numeric`);
  return Number(s);
}

/**
 * Writes the spec's secrets and configs into a tmpfs mounted at `dir` (never on disk) and returns the
 * read-only bind mounts for them: secrets at /run/secrets/<File.Name> (or an absolute File.Name),
 * configs at /<File.Name> (or an absolute one). Returns [] and mounts nothing when there are none.
 */
export async function prepareSecretFiles(spec: ContainerSpec, deps: DependencyGetter | undefined, dir: string): Promise<OciMount[]> {
  const files: FileToWrite[] = [];
  for (const s of spec.Secrets ?? []) {
    if (s.File === undefined) continue;
    const data = deps?.secret(s.SecretID);
    if (data === undefined) throw new MountSpecError(`secret ${s.SecretName} (${s.SecretID}) is not in this node's assignments`);
    const target = s.File.Name.startsWith('/') ? s.File.Name : posix.join('/run/secrets', s.File.Name);
    files.push({ kind: 'secret', id: s.SecretID, name: s.SecretName, target, file: s.File, data });
  }
  for (const c of spec.Configs ?? []) {
    if (c.File === undefined) continue;
    const data = deps?.config(c.ConfigID);
    if (data === undefined) throw new MountSpecError(`config ${c.ConfigName} (${c.ConfigID}) is not in this node's assignments`);
    const target = c.File.Name.startsWith('/') ? c.File.Name : posix.join('/', c.File.Name);
    files.push({ kind: 'config', id: c.ConfigID, name: c.ConfigName, target, file: c.File, data });
  }
  if (files.length === 0) return [];
  const targets = new Set<string>();
  for (const f of files) {
    const t = checkTarget(f.target);
    if (targets.has(t)) throw new MountSpecError(`two secrets or configs target ${t}`);
    targets.add(t);
  }
  const total = files.reduce((n, f) => n + f.data.byteLength, 0);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mountTmpfs(dir, Math.max(SECRETS_TMPFS_MIN_BYTES, total * 2 + files.length * 4096), 0o700);
  const mounts: OciMount[] = [];
  for (const [i, f] of files.entries()) {
    const host = join(dir, `${f.kind}-${i}`);
    const mode = f.file.Mode === 0 ? DEFAULT_FILE_MODE : f.file.Mode;
    await writeFile(host, f.data, { mode: 0o600 });
    await chown(host, numericId(f.file.UID, `${f.kind} ${f.name} UID`), numericId(f.file.GID, `${f.kind} ${f.name} GID`));
    await chmod(host, mode & 0o7777);
    mounts.push({ destination: posix.normalize(f.target), type: 'bind', source: host, options: ['rbind', 'rprivate', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }
  return mounts;
}

/** Writes hostname, hosts (and resolv.conf when given or when the spec has DNS settings) into `dir`; returns their bind mounts. */
export async function prepareEtcFiles(spec: ContainerSpec, hostname: string, dir: string, resolvConf?: string): Promise<OciMount[]> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const hosts = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `127.0.1.1\t${hostname}`];
  for (const h of spec.Hosts ?? []) {
    // Docker accepts `IP host…` and the older `host:IP`.
    const m = /^([^\s:]+):([0-9a-fA-F:.]+)$/.exec(h);
    hosts.push(m !== null ? `${m[2]}\t${m[1]}` : h.trim().replace(/\s+/, '\t'));
  }
  await writeFile(join(dir, 'hostname'), `${hostname}\n`, { mode: 0o644 });
  await writeFile(join(dir, 'hosts'), `${hosts.join('\n')}\n`, { mode: 0o644 });
  const mounts: OciMount[] = [
    { destination: '/etc/hostname', type: 'bind', source: join(dir, 'hostname'), options: ['rbind', 'rprivate'] },
    { destination: '/etc/hosts', type: 'bind', source: join(dir, 'hosts'), options: ['rbind', 'rprivate'] },
  ];
  const dns = spec.DNSConfig;
  if (resolvConf !== undefined) {
    await writeFile(join(dir, 'resolv.conf'), resolvConf.endsWith('\n') ? resolvConf : `${resolvConf}\n`, { mode: 0o644 });
    mounts.push({ destination: '/etc/resolv.conf', type: 'bind', source: join(dir, 'resolv.conf'), options: ['rbind', 'rprivate'] });
  } else if (dns !== undefined && ((dns.Nameservers?.length ?? 0) > 0 || (dns.Search?.length ?? 0) > 0 || (dns.Options?.length ?? 0) > 0)) {
    const lines = [
      ...(dns.Nameservers ?? []).map((n) => `nameserver ${n}`),
      ...((dns.Search?.length ?? 0) > 0 ? [`search ${(dns.Search ?? []).join(' ')}`] : []),
      ...((dns.Options?.length ?? 0) > 0 ? [`options ${(dns.Options ?? []).join(' ')}`] : []),
    ];
    await writeFile(join(dir, 'resolv.conf'), `${lines.join('\n')}\n`, { mode: 0o644 });
    mounts.push({ destination: '/etc/resolv.conf', type: 'bind', source: join(dir, 'resolv.conf'), options: ['rbind', 'rprivate'] });
  }
  return mounts;
}

export async function removeDirs(dirs: readonly string[]): Promise<void> {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}
