import { describe, expect, it } from 'vitest';
import { compareSpecificity, compilePattern, matchPattern, PatternError, splitVersionPrefix } from './router.js';

describe('route patterns', () => {
  it('matches literals and binds decoded parameters', () => {
    const p = compilePattern('/services/{id}/update');
    expect(matchPattern(p, '/services/web/update')).toEqual({ id: 'web' });
    expect(matchPattern(p, '/services/a%20b/update')).toEqual({ id: 'a b' });
    expect(matchPattern(p, '/services/web/update/')).toEqual({ id: 'web' });
    expect(matchPattern(p, '/services/web')).toBeUndefined();
    expect(matchPattern(p, '/services/a/b/update')).toBeUndefined();
  });

  it('a greedy parameter takes image names with slashes', () => {
    const p = compilePattern('/distribution/{name*}/json');
    expect(matchPattern(p, '/distribution/library/busybox:latest/json')).toEqual({ name: 'library/busybox:latest' });
    expect(matchPattern(p, '/distribution/busybox/json')).toEqual({ name: 'busybox' });
  });

  it('a trailing * matches the prefix itself and anything under it', () => {
    const p = compilePattern('/nodes/*');
    expect(matchPattern(p, '/nodes')).toEqual({});
    expect(matchPattern(p, '/nodes/abc/update')).toEqual({});
    expect(matchPattern(p, '/nodesx')).toBeUndefined();
  });

  it('rejects malformed patterns', () => {
    expect(() => compilePattern('services')).toThrow(PatternError);
    expect(() => compilePattern('/a/*/b')).toThrow(PatternError);
    expect(() => compilePattern('/a/{id}/{id}')).toThrow(PatternError);
    expect(() => compilePattern('/a//b')).toThrow(PatternError);
  });

  it('orders exact routes before catch-alls and more literal segments first', () => {
    const routes = [
      { ...compilePattern('/services/*'), seq: 0 },
      { ...compilePattern('/services/{id}'), seq: 1 },
      { ...compilePattern('/services/create'), seq: 2 },
    ].sort(compareSpecificity);
    expect(routes.map((r) => r.pattern)).toEqual(['/services/create', '/services/{id}', '/services/*']);
  });

  it('splits an optional /vX.Y prefix', () => {
    expect(splitVersionPrefix('/v1.50/info')).toEqual({ version: '1.50', rest: '/info' });
    expect(splitVersionPrefix('/v1.24/services/x')).toEqual({ version: '1.24', rest: '/services/x' });
    expect(splitVersionPrefix('/info')).toEqual({ version: undefined, rest: '/info' });
    expect(splitVersionPrefix('/version')).toEqual({ version: undefined, rest: '/version' });
  });
});
