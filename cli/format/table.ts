// Tables as docker prints them (Go tabwriter: minimum cell width 10, padding 3, last column unpadded).
const MIN_WIDTH = 10;
const PADDING = 3;

export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, col) => Math.max(MIN_WIDTH, ...all.map((r) => (r[col] ?? '').length + PADDING)));
  return all
    .map((r) =>
      r
        .map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col] ?? MIN_WIDTH)))
        .join('')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}
