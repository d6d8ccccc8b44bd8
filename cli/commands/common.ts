// Helpers the swarm-mode commands share: docker-style list output (table, `-q`, `--format` with
// docker's `table ` prefix), inspect output, relative times, and `--filter k=v` → the API's filters.
import { CliError } from '../errors.js';
import { formatTable } from '../format/table.js';
import { renderTemplate } from '../format/template.js';
import type { CliContext } from '../context.js';

type Value = Parameters<typeof renderTemplate>[1];

export interface Column<T> {
  readonly header: string;
  /** The field name `--format` uses for it ({{.ID}}). */
  readonly field: string;
  readonly value: (row: T) => string;
}

/** Prints rows: `-q` → IDs; `--format` → one rendered line per row (a `table ` prefix adds headers); else a table. */
export function printList<T>(ctx: CliContext, rows: readonly T[], columns: readonly Column<T>[], opts: { quiet?: boolean; format?: string; id: (row: T) => string }): void {
  if (opts.quiet === true) {
    ctx.io.out(rows.map((r) => `${opts.id(r)}\n`).join(''));
    return;
  }
  const contextOf = (r: T): Value => Object.fromEntries(columns.map((c) => [c.field, c.value(r)])) as Value;
  if (opts.format !== undefined && opts.format !== '' && opts.format !== 'table') {
    const table = opts.format.startsWith('table');
    const format = table ? opts.format.slice('table'.length).trimStart() : opts.format;
    if (!table) {
      ctx.io.out(rows.map((r) => `${renderTemplate(format, contextOf(r))}\n`).join(''));
      return;
    }
    const headerCtx = Object.fromEntries(columns.map((c) => [c.field, c.header])) as Value;
    const split = (line: string): string[] => line.split('\t');
    ctx.io.out(formatTable(split(renderTemplate(format, headerCtx)), rows.map((r) => split(renderTemplate(format, contextOf(r))))));
    return;
  }
  ctx.io.out(formatTable(columns.map((c) => c.header), rows.map((r) => columns.map((c) => c.value(r)))));
}

/** `inspect`: a JSON array indented as docker prints it, or each object through `--format`. */
export function printInspect(ctx: CliContext, objects: readonly unknown[], format: string | undefined): void {
  if (format !== undefined && format !== '') {
    ctx.io.out(objects.map((o) => `${renderTemplate(format, o as Value)}\n`).join(''));
    return;
  }
  ctx.io.out(`${JSON.stringify(objects, null, 4)}\n`);
}

/** docker's units.HumanDuration + " ago". */
export function ago(iso: unknown, now = Date.now()): string {
  const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
  if (!Number.isFinite(t)) return '';
  const s = Math.max(0, (now - t) / 1000);
  const human = (): string => {
    if (s < 1) return 'Less than a second';
    if (s < 2) return '1 second';
    if (s < 60) return `${Math.floor(s)} seconds`;
    const m = s / 60;
    if (m < 2) return 'About a minute';
    if (m < 60) return `${Math.floor(m)} minutes`;
    const h = m / 60;
    if (h < 2) return 'About an hour';
    if (h < 48) return `${Math.floor(h)} hours`;
    if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
    if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
    if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
    return `${Math.floor(h / 24 / 365)} years`;
  };
  return `${human()} ago`;
}

/** `--filter key=value` flags → the API's `filters` JSON (map form, as the docker CLI sends it). */
export function filtersQuery(filter: unknown): Record<string, string> {
  const list = (Array.isArray(filter) ? filter : filter === undefined ? [] : [filter]).map(String);
  if (list.length === 0) return {};
  const out: Record<string, Record<string, boolean>> = {};
  for (const f of list) {
    const i = f.indexOf('=');
    if (i <= 0) throw new CliError('ERR_USAGE', `bad format of filter (expected name=value): ${f}`);
    (out[f.slice(0, i)] ??= {})[f.slice(i + 1)] = true;
  }
  return { filters: JSON.stringify(out) };
}

export const titleCase = (s: string): string => (s === '' ? s : s[0]!.toUpperCase() + s.slice(1));

export function asArray(v: unknown): string[] {
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(String);
}
