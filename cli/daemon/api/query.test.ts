import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { boolValue, checkFilterKeys, parseBoolParam, parseFilters, versionParam } from './query.js';

const q = (s: string): URLSearchParams => new URLSearchParams(s);

describe('query parameters as the Docker daemon reads them', () => {
  it('BoolValue: false only for absent, empty, 0, no, false, none', () => {
    for (const v of ['1', 'true', 'True', 'yes', 'anything']) expect(boolValue(q(`force=${v}`), 'force')).toBe(true);
    for (const v of ['', '0', 'no', 'false', 'FALSE', 'none']) expect(boolValue(q(`force=${v}`), 'force')).toBe(false);
    expect(boolValue(q(''), 'force')).toBe(false);
  });

  it('ParseBool: Go strconv rules, 400 on anything else', () => {
    expect(parseBoolParam(q('status=true'), 'status')).toBe(true);
    expect(parseBoolParam(q('status=1'), 'status')).toBe(true);
    expect(parseBoolParam(q('status=F'), 'status')).toBe(false);
    expect(parseBoolParam(q(''), 'status', true)).toBe(true);
    expect(() => parseBoolParam(q('status=yes'), 'status')).toThrow(InvalidArgumentError);
  });

  it('filters in map form and array form', () => {
    const map = parseFilters(q(`filters=${encodeURIComponent('{"name":{"web":true,"db":false},"label":{"a=b":true}}')}`));
    expect(map.get('name')).toEqual(['web']);
    expect(map.get('label')).toEqual(['a=b']);
    const arr = parseFilters(q(`filters=${encodeURIComponent('{"service":["web","db"]}')}`));
    expect(arr.get('service')).toEqual(['web', 'db']);
    expect(parseFilters(q('')).size).toBe(0);
  });

  it("bad filters are 400s with Docker's texts", () => {
    expect(() => parseFilters(q('filters=notjson'))).toThrow(InvalidArgumentError);
    expect(() => parseFilters(q(`filters=${encodeURIComponent('{"name":"web"}')}`))).toThrow(InvalidArgumentError);
    const f = parseFilters(q(`filters=${encodeURIComponent('{"x":["1"]}')}`));
    expect(() => checkFilterKeys(f, ['name', 'id'])).toThrow("invalid filter 'x'");
  });

  it('version is a decimal integer', () => {
    expect(versionParam(q('version=42'))).toBe(42);
    expect(() => versionParam(q(''))).toThrow(InvalidArgumentError);
    expect(() => versionParam(q('version=4x'))).toThrow(InvalidArgumentError);
  });
});
