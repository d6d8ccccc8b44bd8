// Loading a Compose file for `stack deploy`: YAML (the `yaml` package), `${VAR}` interpolation as
// docker does it (`$$` for a dollar, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
// `${VAR?error}`, `$VAR`), and `env_file` reading. Translation to swarm specs is convert.ts.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { DocumentOptions, ParseOptions, ScalarTag, SchemaOptions, Tags, ToJSOptions } from 'yaml';
import { StackError } from './errors.js';

// The YAML parser is loaded on first use: this module is imported by every `shoal service`
// command (isObj, via deploy.ts) and the parser alone is most of a short command's start-up.
const requireCjs = createRequire(import.meta.url);
let yaml: typeof import('yaml') | undefined;
function parseYaml(text: string, options: ParseOptions & DocumentOptions & SchemaOptions & ToJSOptions): unknown {
  yaml ??= requireCjs('yaml') as typeof import('yaml');
  return yaml.parse(text, options);
}

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface ComposeFile {
  /** The parsed, interpolated document. */
  readonly doc: Obj;
  /** Directory relative paths (files, env_file, bind mounts) are resolved against. */
  readonly workingDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * `0440` is octal in the YAML 1.1 loader docker uses (file modes are written so); YAML 1.2 would
 * read 440. `0o440` works either way.
 */
const LEGACY_OCTAL: ScalarTag = {
  tag: 'tag:yaml.org,2002:int',
  default: true,
  test: /^0[0-7]+$/,
  resolve: (s: string) => parseInt(s, 8),
};

/** Interpolates one string; `where` names the key for error messages. */
export function interpolate(s: string, env: Readonly<Record<string, string | undefined>>, where: string): string {
  const re = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^}\\]|\\.)*))?\}|([A-Za-z_][A-Za-z0-9_]*)|(\{[^}]*\}?))/g;
  return s.replace(re, (whole, dollar: string | undefined, name: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined, bad: string | undefined) => {
    if (dollar !== undefined) return '$';
    if (bad !== undefined) throw new StackError(`${where}: invalid interpolation format for ${JSON.stringify(s)}: ${JSON.stringify(whole)}`);
    if (bare !== undefined) return env[bare] ?? '';
    const value = env[name as string];
    const unsetOrEmpty = value === undefined || value === '';
    switch (op) {
      case undefined:
        return value ?? '';
      case ':-':
        return unsetOrEmpty ? interpolate(arg ?? '', env, where) : value;
      case '-':
        return value === undefined ? interpolate(arg ?? '', env, where) : value;
      case ':?':
        if (unsetOrEmpty) throw new StackError(`${where}: required variable ${name} is missing a value${arg ? `: ${arg}` : ''}`);
        return value;
      case '?':
        if (value === undefined) throw new StackError(`${where}: required variable ${name} is missing a value${arg ? `: ${arg}` : ''}`);
        return value;
      default:
        return whole;
    }
  });
}

function interpolateTree(v: unknown, env: Readonly<Record<string, string | undefined>>, where: string): unknown {
  if (typeof v === 'string') return interpolate(v, env, where);
  if (Array.isArray(v)) return v.map((x, i) => interpolateTree(x, env, `${where}[${i}]`));
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateTree(x, env, where === '' ? k : `${where}.${k}`)]));
  return v;
}

/** Parses compose text; `file` names it in errors. */
export function parseCompose(text: string, file: string, workingDir: string, env: Readonly<Record<string, string | undefined>> = process.env): ComposeFile {
  let raw: unknown;
  try {
    const options: ParseOptions & DocumentOptions & SchemaOptions & ToJSOptions = { merge: true, maxAliasCount: 1000, customTags: (tags: Tags) => [LEGACY_OCTAL, ...tags] };
    raw = parseYaml(text, options);
  } catch (err) {
    throw new StackError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isObj(raw)) throw new StackError(`${file}: top-level object must be a mapping`);
  const doc = interpolateTree(raw, env, '') as Obj;
  if (!isObj(doc['services']) || Object.keys(doc['services']).length === 0) throw new StackError(`${file}: no services defined (a "services:" mapping is required)`);
  return { doc, workingDir, env };
}

/** Reads and parses a compose file from disk ("-" is not supported: a path is needed for relative files). */
export function loadComposeFile(path: string, env: Readonly<Record<string, string | undefined>> = process.env): ComposeFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new StackError(`cannot read compose file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseCompose(text, path, dirname(resolve(path)), env);
}

/** KEY=VALUE lines of an env file (comments and blank lines skipped; `KEY` alone takes the environment's value). */
export function readEnvFile(path: string, env: Readonly<Record<string, string | undefined>>): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new StackError(`env_file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const i = t.indexOf('=');
    if (i < 0) {
      const v = env[t];
      if (v !== undefined) out.push(`${t}=${v}`);
      continue;
    }
    let value = t.slice(i + 1);
    if (value.length >= 2 && ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'")))) value = value.slice(1, -1);
    out.push(`${t.slice(0, i).trim()}=${value}`);
  }
  return out;
}
