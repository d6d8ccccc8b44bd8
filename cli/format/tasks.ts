// The task table of `service ps` / `stack ps` as docker prints it: tasks grouped by service and
// slot (node for global services), the newest first and older ones of the same slot indented as
// ` \_ web.1`; service and node names resolved by ID (errors leave the ID); states title-cased with
// how long ago; errors quoted and truncated unless --no-trunc.
export interface TaskRow {
  readonly ID: string;
  readonly ServiceID: string;
  readonly Slot?: number;
  readonly NodeID?: string;
  readonly DesiredState?: string;
  readonly CreatedAt?: string;
  readonly Spec?: { readonly ContainerSpec?: { readonly Image?: string } };
  readonly Status?: {
    readonly State?: string;
    readonly Timestamp?: string;
    readonly Err?: string;
    readonly PortStatus?: { readonly Ports?: readonly { readonly PublishedPort?: number; readonly TargetPort?: number; readonly Protocol?: string }[] };
  };
}

export interface TaskDisplay {
  readonly ID: string;
  readonly Name: string;
  readonly Image: string;
  readonly Node: string;
  readonly DesiredState: string;
  readonly CurrentState: string;
  readonly Error: string;
  readonly Ports: string;
}

const title = (s: string): string => (s === '' ? s : s[0]!.toUpperCase() + s.slice(1));
const ERROR_MAX = 30;

/** Orders and names tasks as docker's `service ps` does. */
export function taskDisplays(
  tasks: readonly TaskRow[],
  names: { service(id: string): string; node(id: string): string },
  opts: { noTrunc: boolean; ago: (iso: string | undefined) => string },
): { task: TaskRow; display: TaskDisplay }[] {
  const keyOf = (t: TaskRow): string => `${names.service(t.ServiceID)}\u0000${(t.Slot ?? 0) > 0 ? String(t.Slot).padStart(10, '0') : (t.NodeID ?? '')}`;
  const sorted = [...tasks].sort((a, b) => {
    const ka = keyOf(a);
    const kb = keyOf(b);
    if (ka !== kb) return ka < kb ? -1 : 1;
    const ta = a.Status?.Timestamp ?? a.CreatedAt ?? '';
    const tb = b.Status?.Timestamp ?? b.CreatedAt ?? '';
    return ta < tb ? 1 : ta > tb ? -1 : 0;
  });
  let lastKey = '';
  return sorted.map((t) => {
    const key = keyOf(t);
    const service = names.service(t.ServiceID);
    const base = (t.Slot ?? 0) > 0 ? `${service}.${t.Slot}` : `${service}.${t.NodeID ?? ''}`;
    const name = key === lastKey ? ` \\_ ${base}` : base;
    lastKey = key;
    const image = (t.Spec?.ContainerSpec?.Image ?? '').split('@')[0] ?? '';
    let err = t.Status?.Err ?? '';
    if (err !== '' && !opts.noTrunc && err.length > ERROR_MAX) err = `${err.slice(0, ERROR_MAX - 1)}…`;
    const ports = (t.Status?.PortStatus?.Ports ?? []).map((p) => `*:${p.PublishedPort ?? ''}->${p.TargetPort ?? ''}/${p.Protocol ?? 'tcp'}`).join(', ');
    const state = t.Status?.State ?? '';
    return {
      task: t,
      display: {
        ID: opts.noTrunc ? t.ID : t.ID.slice(0, 12),
        Name: name,
        Image: image,
        Node: t.NodeID !== undefined && t.NodeID !== '' ? names.node(t.NodeID) : '',
        DesiredState: title(t.DesiredState ?? ''),
        CurrentState: `${title(state)} ${opts.ago(t.Status?.Timestamp)}`.trim(),
        Error: err === '' ? '' : `"${err}"`,
        Ports: ports,
      },
    };
  });
}

export const TASK_COLUMNS: readonly { readonly header: string; readonly field: keyof TaskDisplay }[] = [
  { header: 'ID', field: 'ID' },
  { header: 'NAME', field: 'Name' },
  { header: 'IMAGE', field: 'Image' },
  { header: 'NODE', field: 'Node' },
  { header: 'DESIRED STATE', field: 'DesiredState' },
  { header: 'CURRENT STATE', field: 'CurrentState' },
  { header: 'ERROR', field: 'Error' },
  { header: 'PORTS', field: 'Ports' },
];
