// Path patterns for the local API. A pattern is a path of segments:
//   literal   `services`
//   `{id}`    one segment, percent-decoded, bound to params.id
//   `{name*}` one or more segments (for image names with slashes: `/distribution/{name*}/json`)
//   `*`       as the last segment only: any rest of the path, including none (a catch-all)
// Routes are tried most specific first: exact ones before catch-alls, then by literal segments,
// then in registration order; so a handler registered for `/services/{id}` wins over a catch-all
// `/services/*` whatever the order in which they were added.

export interface CompiledPattern {
  readonly pattern: string;
  readonly regex: RegExp;
  readonly paramNames: readonly string[];
  readonly literalCount: number;
  readonly catchAll: boolean;
}

const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]*)(\*)?\}$/;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class PatternError extends Error {
  override readonly name = 'PatternError';
  readonly code = 'ERR_BAD_ROUTE_PATTERN';
}

export function compilePattern(pattern: string): CompiledPattern {
  if (!pattern.startsWith('/')) throw new PatternError(`route pattern must start with "/": ${pattern}`);
  const segments = pattern === '/' ? [] : pattern.slice(1).split('/');
  const paramNames: string[] = [];
  let source = '^';
  let literalCount = 0;
  let catchAll = false;
  segments.forEach((seg, i) => {
    if (seg === '*') {
      if (i !== segments.length - 1) throw new PatternError(`"*" must be the last segment: ${pattern}`);
      catchAll = true;
      source += '(?:/.*)?';
      return;
    }
    const m = PARAM.exec(seg);
    if (m !== null) {
      const name = m[1] as string;
      if (paramNames.includes(name)) throw new PatternError(`parameter {${name}} appears twice: ${pattern}`);
      paramNames.push(name);
      source += m[2] === '*' ? '/(.+?)' : '/([^/]+)';
      return;
    }
    if (seg === '' || seg.includes('{') || seg.includes('}')) throw new PatternError(`bad segment "${seg}" in ${pattern}`);
    literalCount++;
    source += `/${escapeRegex(seg)}`;
  });
  if (segments.length === 0) source += '/';
  source += '/?$';
  return { pattern, regex: new RegExp(source), paramNames, literalCount, catchAll };
}

/** Params of `path` if it matches, else undefined. Throws URIError on bad percent-encoding. */
export function matchPattern(p: CompiledPattern, path: string): Record<string, string> | undefined {
  const m = p.regex.exec(path);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  p.paramNames.forEach((name, i) => {
    params[name] = decodeURIComponent(m[i + 1] as string);
  });
  return params;
}

/** Sort order: exact routes first, then more literal segments, then registration order. */
export function compareSpecificity(a: CompiledPattern & { readonly seq: number }, b: CompiledPattern & { readonly seq: number }): number {
  if (a.catchAll !== b.catchAll) return a.catchAll ? 1 : -1;
  if (a.literalCount !== b.literalCount) return b.literalCount - a.literalCount;
  return a.seq - b.seq;
}

/** Splits an optional `/vX.Y` prefix off a request path. */
export function splitVersionPrefix(path: string): { readonly version: string | undefined; readonly rest: string } {
  const m = /^\/v(\d+\.\d+)(\/.*)?$/.exec(path);
  if (m === null) return { version: undefined, rest: path };
  return { version: m[1], rest: m[2] ?? '/' };
}
