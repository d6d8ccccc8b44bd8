// Listing tasks (`stack ps`, `service ps`): reads them with the given filters, resolves service
// and node names as the docker CLI does (one GET per distinct ID, errors leave the ID) and prints
// the table, `-q`, or `--format`.
import type { ApiClient } from '../client/api-client.js';
import type { CliContext } from '../context.js';
import { ago, filtersQuery, printList, type Column } from '../commands/common.js';
import { TASK_COLUMNS, taskDisplays, type TaskDisplay, type TaskRow } from '../format/tasks.js';

/** `--filter k=v` flags merged over fixed filters, as the API's `filters` JSON. */
export function mergedFilters(fixed: Readonly<Record<string, readonly string[]>>, flags: unknown): Record<string, string> {
  const user = filtersQuery(flags)['filters'];
  const out: Record<string, Record<string, boolean>> = user !== undefined ? (JSON.parse(user) as Record<string, Record<string, boolean>>) : {};
  for (const [k, values] of Object.entries(fixed)) for (const v of values) (out[k] ??= {})[v] = true;
  return Object.keys(out).length === 0 ? {} : { filters: JSON.stringify(out) };
}

export interface PsOptions {
  readonly quiet: boolean;
  readonly noTrunc: boolean;
  readonly noResolve: boolean;
  readonly format?: string | undefined;
}

export async function printTasks(ctx: CliContext, client: ApiClient, query: Record<string, string>, o: PsOptions): Promise<number> {
  const tasks = await client.get<TaskRow[]>('/tasks', query);
  const serviceNames = new Map<string, string>();
  const nodeNames = new Map<string, string>();
  if (!o.noResolve) {
    for (const id of new Set(tasks.map((t) => t.ServiceID))) {
      try {
        serviceNames.set(id, (await client.get<{ Spec: { Name: string } }>(`/services/${encodeURIComponent(id)}`, { insertDefaults: 'false' })).Spec.Name);
      } catch {
        // a removed service: show its ID
      }
    }
    for (const id of new Set(tasks.map((t) => t.NodeID ?? '').filter((n) => n !== ''))) {
      try {
        const n = await client.get<{ Spec?: { Name?: string }; Description?: { Hostname?: string } }>(`/nodes/${encodeURIComponent(id)}`);
        nodeNames.set(id, n.Spec?.Name || n.Description?.Hostname || id);
      } catch {
        // a removed node: show its ID
      }
    }
  }
  const rows = taskDisplays(tasks, { service: (id) => serviceNames.get(id) ?? id, node: (id) => nodeNames.get(id) ?? id }, { noTrunc: o.noTrunc, ago: (iso) => ago(iso) });
  const columns: Column<{ display: TaskDisplay }>[] = TASK_COLUMNS.map((c) => ({ header: c.header, field: c.field, value: (r) => r.display[c.field] }));
  printList(ctx, rows, columns, { quiet: o.quiet, ...(o.format !== undefined ? { format: o.format } : {}), id: (r) => r.display.ID });
  return tasks.length;
}
