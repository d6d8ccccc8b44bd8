// Applying a StackPlan through the daemon's API, in the docker CLI's order (docker-api.md §2.22):
// networks (existing stack networks kept, external ones must exist), secrets and configs (created
// on 404, else updated with the same body), then each service created or updated in place (the
// current version, its ForceUpdate kept), images pinned through /distribution unless
// `--resolve-image never`; `--prune` removes the stack's services the file no longer has.
// `stack rm` removes services, secrets, configs, then networks.
import type { ApiClient } from '../client/api-client.js';
import { DaemonResponseError } from '../errors.js';
import { isObj, type Obj } from './compose.js';
import { StackError } from './errors.js';
import { IMAGE_LABEL, NAMESPACE_LABEL, type StackPlan } from './convert.js';

/** How long `stack rm` waits for a network's last tasks to stop before reporting it in use. */
const NETWORK_IN_USE_WAIT_MS = 30_000;
const RETRY_MS = 500;

export type ResolveImage = 'always' | 'changed' | 'never';

export interface DeployOptions {
  readonly prune: boolean;
  readonly resolveImage: ResolveImage;
  /** Progress lines ("Creating service app_web"). */
  readonly out: (line: string) => void;
  /** Warnings (unpinned images). */
  readonly warn: (line: string) => void;
}

interface Named {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly Spec: Obj & { readonly Name: string; readonly Labels?: Readonly<Record<string, string>> };
}

interface NetworkResource {
  readonly Id: string;
  readonly Name: string;
  readonly Scope?: string;
  readonly Labels?: Readonly<Record<string, string>> | null;
}

export const namespaceFilter = (ns: string): Record<string, string> => ({ filters: JSON.stringify({ label: { [`${NAMESPACE_LABEL}=${ns}`]: true } }) });

const isNotFound = (err: unknown): boolean => err instanceof DaemonResponseError && err.status === 404;

/** `image[:tag]` with `:latest` added when it names no tag or digest, as the docker CLI sends it. */
export function withDefaultTag(image: string): string {
  if (image.includes('@')) return image;
  const lastSlash = image.lastIndexOf('/');
  return image.slice(lastSlash + 1).includes(':') ? image : `${image}:latest`;
}

/** The image pinned to its registry digest, or undefined (with the docker CLI's warning) when the registry cannot say. */
export async function resolveImageDigest(client: ApiClient, image: string, warn: (line: string) => void): Promise<string | undefined> {
  if (image.includes('@')) return image;
  const tagged = withDefaultTag(image);
  try {
    const d = await client.get<{ Descriptor?: { digest?: string } }>(`/distribution/${tagged.split('/').map(encodeURIComponent).join('/')}/json`);
    const digest = d.Descriptor?.digest;
    if (typeof digest === 'string' && digest.startsWith('sha256:')) return `${tagged}@${digest}`;
  } catch {
    // fall through to the warning
  }
  warn(`image ${tagged} could not be accessed on a registry to record its digest. Each node will access ${tagged} independently, possibly leading to different nodes running different versions of the image.`);
  return undefined;
}

async function deployNetworks(client: ApiClient, plan: StackPlan, o: DeployOptions): Promise<void> {
  const existing = await client.get<NetworkResource[]>('/networks', namespaceFilter(plan.namespace));
  for (const n of plan.networks) {
    if (n.external) {
      let found: NetworkResource;
      try {
        found = await client.get<NetworkResource>(`/networks/${encodeURIComponent(n.name)}`, { scope: 'swarm' });
      } catch (err) {
        if (isNotFound(err)) throw new StackError(`network "${n.name}" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed`);
        throw err;
      }
      if (found.Scope !== undefined && found.Scope !== 'swarm') throw new StackError(`network "${n.name}" is declared as external, but it is not in the right scope: "${found.Scope}" instead of "swarm"`);
      continue;
    }
    if (existing.some((e) => e.Name === n.name)) continue;
    o.out(`Creating network ${n.name}`);
    await client.post('/networks/create', n.create);
  }
}

async function deployDataObjects(client: ApiClient, kind: 'secrets' | 'configs', plan: StackPlan, o: DeployOptions): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  const word = kind === 'secrets' ? 'secret' : 'config';
  for (const d of kind === 'secrets' ? plan.secrets : plan.configs) {
    if (d.external) {
      try {
        const found = await client.get<Named>(`/${kind}/${encodeURIComponent(d.name)}`);
        ids.set(d.name, found.ID);
      } catch (err) {
        if (isNotFound(err)) throw new StackError(`${word} not found: ${d.name} (declared external in the compose file)`);
        throw err;
      }
      continue;
    }
    let current: Named | undefined;
    try {
      current = await client.get<Named>(`/${kind}/${encodeURIComponent(d.name)}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (current === undefined) {
      o.out(`Creating ${word} ${d.name}`);
      const res = await client.post<{ ID: string }>(`/${kind}/create`, d.spec);
      ids.set(d.name, res.ID);
    } else {
      o.out(`Updating ${word} ${d.name}`);
      try {
        await client.post(`/${kind}/${current.ID}/update`, d.spec, { version: current.Version.Index });
      } catch (err) {
        throw new StackError(`failed to update ${word} ${d.name}: ${(err as Error).message}`);
      }
      ids.set(d.name, current.ID);
    }
  }
  return ids;
}

/** Fills SecretID/ConfigID in the spec's references. */
function withRefIds(spec: Obj, secretIds: ReadonlyMap<string, string>, configIds: ReadonlyMap<string, string>): Obj {
  const tt = spec['TaskTemplate'] as Obj;
  const cs = tt['ContainerSpec'] as Obj;
  const secrets = Array.isArray(cs['Secrets']) ? (cs['Secrets'] as Obj[]).map((s) => ({ ...s, SecretID: secretIds.get(String(s['SecretName'])) ?? '' })) : undefined;
  const configs = Array.isArray(cs['Configs']) ? (cs['Configs'] as Obj[]).map((c) => ({ ...c, ConfigID: configIds.get(String(c['ConfigName'])) ?? '' })) : undefined;
  return { ...spec, TaskTemplate: { ...tt, ContainerSpec: { ...cs, ...(secrets ? { Secrets: secrets } : {}), ...(configs ? { Configs: configs } : {}) } } };
}

function imageOf(spec: Obj): string {
  const tt = spec['TaskTemplate'];
  const cs = isObj(tt) ? tt['ContainerSpec'] : undefined;
  return isObj(cs) && typeof cs['Image'] === 'string' ? cs['Image'] : '';
}

function withImage(spec: Obj, image: string): Obj {
  const tt = spec['TaskTemplate'] as Obj;
  return { ...spec, TaskTemplate: { ...tt, ContainerSpec: { ...(tt['ContainerSpec'] as Obj), Image: image } } };
}

export interface DeployResult {
  readonly created: readonly string[];
  readonly updated: readonly string[];
  readonly removed: readonly string[];
  /** Service IDs by name, for waiting on them. */
  readonly serviceIds: ReadonlyMap<string, string>;
}

/** Deploys (or redeploys) a stack. */
export async function deployStack(client: ApiClient, plan: StackPlan, o: DeployOptions): Promise<DeployResult> {
  const info = await client.get<{ Swarm?: { ControlAvailable?: boolean } }>('/info');
  if (info.Swarm?.ControlAvailable !== true) throw new StackError('this node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again');
  const existing = await client.get<Named[]>('/services', namespaceFilter(plan.namespace));
  if (o.prune) {
    for (const s of existing) {
      if (plan.services.some((p) => p.name === s.Spec.Name)) continue;
      o.out(`Removing service ${s.Spec.Name}`);
      await client.delete(`/services/${s.ID}`);
    }
  }
  await deployNetworks(client, plan, o);
  const secretIds = await deployDataObjects(client, 'secrets', plan, o);
  const configIds = await deployDataObjects(client, 'configs', plan, o);
  const created: string[] = [];
  const updated: string[] = [];
  const serviceIds = new Map<string, string>();
  for (const svc of plan.services) {
    let spec = withRefIds(svc.spec, secretIds, configIds);
    const current = existing.find((s) => s.Spec.Name === svc.name);
    const previousImage = current?.Spec.Labels?.[IMAGE_LABEL];
    const resolve = o.resolveImage === 'always' || (o.resolveImage === 'changed' && (current === undefined || previousImage !== svc.image));
    if (resolve) {
      const pinned = await resolveImageDigest(client, svc.image, o.warn);
      if (pinned !== undefined) spec = withImage(spec, pinned);
    } else if (current !== undefined && previousImage === svc.image) {
      // Unchanged image and no resolving: keep the pinned digest, so tasks are not replaced.
      spec = withImage(spec, imageOf(current.Spec));
    }
    if (current === undefined) {
      o.out(`Creating service ${svc.name}`);
      const res = await client.post<{ ID: string; Warnings?: string[] | null }>('/services/create', spec);
      for (const w of res.Warnings ?? []) o.warn(w);
      created.push(svc.name);
      serviceIds.set(svc.name, res.ID);
    } else {
      o.out(`Updating service ${svc.name} (id: ${current.ID})`);
      const tt = current.Spec['TaskTemplate'];
      const force = isObj(tt) && typeof tt['ForceUpdate'] === 'number' ? tt['ForceUpdate'] : undefined;
      if (force !== undefined) spec = { ...spec, TaskTemplate: { ...(spec['TaskTemplate'] as Obj), ForceUpdate: force } };
      const res = await client.post<{ Warnings?: string[] | null } | undefined>(`/services/${current.ID}/update`, spec, { version: current.Version.Index });
      for (const w of res?.Warnings ?? []) o.warn(w);
      updated.push(svc.name);
      serviceIds.set(svc.name, current.ID);
    }
  }
  const removed = o.prune ? existing.filter((s) => !plan.services.some((p) => p.name === s.Spec.Name)).map((s) => s.Spec.Name) : [];
  return { created, updated, removed, serviceIds };
}

/** Removes everything labelled with the stack's namespace; false when there was nothing. */
export async function removeStack(client: ApiClient, namespace: string, out: (line: string) => void, err: (line: string) => void): Promise<boolean> {
  const filter = namespaceFilter(namespace);
  const services = await client.get<Named[]>('/services', filter);
  const networks = await client.get<NetworkResource[]>('/networks', filter);
  const secrets = await client.get<Named[]>('/secrets', filter);
  const configs = await client.get<Named[]>('/configs', filter);
  if (services.length + networks.length + secrets.length + configs.length === 0) return false;
  let failed = false;
  const attempt = async (what: string, path: string): Promise<void> => {
    out(`Removing ${what}`);
    const deadline = Date.now() + NETWORK_IN_USE_WAIT_MS;
    for (let i = 0; ; i++) {
      try {
        await client.delete(path);
        return;
      } catch (e) {
        // A network stays in use until the removed services' tasks have stopped: wait for them (bounded).
        const busy = e instanceof DaemonResponseError && /in use by task/.test(e.daemonMessage);
        if (busy && Date.now() < deadline && i < NETWORK_IN_USE_WAIT_MS / RETRY_MS) {
          await new Promise((r) => setTimeout(r, RETRY_MS));
          continue;
        }
        failed = true;
        err(`Failed to remove ${what}: ${(e as Error).message}`);
        return;
      }
    }
  };
  for (const s of [...services].sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name))) await attempt(`service ${s.Spec.Name}`, `/services/${s.ID}`);
  for (const s of [...secrets].sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name))) await attempt(`secret ${s.Spec.Name}`, `/secrets/${s.ID}`);
  for (const c of [...configs].sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name))) await attempt(`config ${c.Spec.Name}`, `/configs/${c.ID}`);
  for (const n of [...networks].sort((a, b) => a.Name.localeCompare(b.Name))) await attempt(`network ${n.Name}`, `/networks/${n.Id}`);
  if (failed) throw new StackError(`failed to remove some resources from stack: ${namespace}`);
  return true;
}
