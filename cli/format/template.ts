// `--format` templates in the Go text/template style docker users know, for the common cases:
//   {{.Field.Sub}}  {{.}}  {{json .X}}  {{.X | json}}  {{upper .X}}  {{lower .X}}  {{title .X}}
//   {{join .List ", "}}  {{len .List}}  {{truncate .X 12}}  {{index .Map "key"}}  {{split .X ","}}  {{pad .X 1 2}}
// Field names match exactly, else case-insensitively (so docker's `{{.Server.APIVersion}}` finds
// the API's `ApiVersion`). `\t` and `\n` in the format become a tab and a newline, as in docker.
import { CliError } from '../errors.js';

type Value = unknown;
type Fn = (args: readonly Value[]) => Value;

const FUNCS: Readonly<Record<string, Fn>> = {
  json: ([v]) => JSON.stringify(v ?? null),
  upper: ([v]) => text(v).toUpperCase(),
  lower: ([v]) => text(v).toLowerCase(),
  title: ([v]) => text(v).replace(/\b\w/g, (c) => c.toUpperCase()),
  join: ([list, sep]) => (Array.isArray(list) ? list.map(text).join(text(sep)) : text(list)),
  len: ([v]) => (Array.isArray(v) || typeof v === 'string' ? v.length : v !== null && typeof v === 'object' ? Object.keys(v).length : 0),
  truncate: ([v, n]) => text(v).slice(0, Number(n)),
  println: (args) => `${args.map(text).join(' ')}\n`,
  split: ([v, sep]) => text(v).split(text(sep)),
  pad: ([v, left, right]) => `${' '.repeat(Number(left) || 0)}${text(v)}${' '.repeat(Number(right) || 0)}`,
  /** `{{index .Spec.Labels "com.docker.stack.namespace"}}`, `{{index .List 0}}`: missing → no value. */
  index: ([v, ...keys]) => {
    let cur: Value = v;
    for (const k of keys) {
      if (Array.isArray(cur)) cur = cur[Number(k)];
      else if (cur !== null && typeof cur === 'object') cur = (cur as Record<string, unknown>)[text(k)];
      else return undefined;
    }
    return cur ?? '';
  },
};

/** How Go's text/template prints a value. */
function text(v: Value): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(text).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}:${text(x)}`).join(' ')}]`;
  return String(v);
}

function field(value: Value, path: string, whole: string): Value {
  if (path === '') return value;
  let cur: Value = value;
  for (const name of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) {
      throw new CliError('ERR_TEMPLATE', `template: ${whole}: can't evaluate field ${name} in a value that is not an object`);
    }
    const obj = cur as Record<string, unknown>;
    if (name in obj) {
      cur = obj[name];
      continue;
    }
    const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
    if (key === undefined) throw new CliError('ERR_TEMPLATE', `template: ${whole}: can't evaluate field ${name}`);
    cur = obj[key];
  }
  return cur;
}

function tokenize(src: string, whole: string): string[] {
  const tokens: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|\||[^\s|"]+)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(src)) !== null) {
    tokens.push(m[1] as string);
    if (re.lastIndex >= src.length) break;
  }
  if (src.trim() !== '' && tokens.join('').replace(/\s/g, '') !== src.replace(/\s/g, '')) throw new CliError('ERR_TEMPLATE', `template: ${whole}: cannot parse "${src}"`);
  return tokens;
}

function evalArg(tok: string, data: Value, whole: string): Value {
  if (tok === '.') return data;
  if (tok.startsWith('.')) return field(data, tok.slice(1), whole);
  if (tok.startsWith('"')) return JSON.parse(tok) as string;
  if (/^-?\d+(\.\d+)?$/.test(tok)) return Number(tok);
  if (tok === 'true' || tok === 'false') return tok === 'true';
  throw new CliError('ERR_TEMPLATE', `template: ${whole}: unexpected "${tok}"`);
}

function evalAction(action: string, data: Value, whole: string): Value {
  const tokens = tokenize(action, whole);
  const commands: string[][] = [[]];
  for (const t of tokens) {
    if (t === '|') commands.push([]);
    else (commands[commands.length - 1] as string[]).push(t);
  }
  let piped: Value = undefined;
  commands.forEach((cmd, i) => {
    if (cmd.length === 0) throw new CliError('ERR_TEMPLATE', `template: ${whole}: missing command in "${action}"`);
    const [head, ...rest] = cmd as [string, ...string[]];
    const fn = FUNCS[head];
    if (fn === undefined) {
      if (cmd.length > 1 || i > 0) throw new CliError('ERR_TEMPLATE', `template: ${whole}: function "${head}" not defined`);
      piped = evalArg(head, data, whole);
      return;
    }
    const args = rest.map((t) => evalArg(t, data, whole));
    if (i > 0) args.push(piped);
    piped = fn(args);
  });
  return piped;
}

/** Renders `format` against `data`. */
export function renderTemplate(format: string, data: Value): string {
  const src = format.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  let out = '';
  let pos = 0;
  while (pos < src.length) {
    const open = src.indexOf('{{', pos);
    if (open < 0) {
      out += src.slice(pos);
      break;
    }
    out += src.slice(pos, open);
    const close = src.indexOf('}}', open + 2);
    if (close < 0) throw new CliError('ERR_TEMPLATE', `template: ${format}: unclosed action`);
    const action = src.slice(open + 2, close).replace(/^-\s*/, '').replace(/\s*-$/, '');
    out += text(evalAction(action.trim(), data, format));
    pos = close + 2;
  }
  return out;
}
