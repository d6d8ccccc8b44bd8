import { describe, expect, it } from 'vitest';
import { decodeRegistryAuth, encodeRegistryAuth, parseChallenges, RegistryAuthHeaderError } from './auth.js';

describe('X-Registry-Auth', () => {
  it('decodes the base64url JSON the docker CLI sends', () => {
    const header = encodeRegistryAuth({ username: 'alice', password: 'p+/?=w', serveraddress: 'reg:5000' });
    expect(header).not.toMatch(/[+/=]/);
    expect(decodeRegistryAuth(header)).toEqual({ username: 'alice', password: 'p+/?=w', serveraddress: 'reg:5000' });
  });

  it('accepts standard base64 and the config.json `auth` field', () => {
    const std = Buffer.from(JSON.stringify({ auth: Buffer.from('bob:secret:x').toString('base64') })).toString('base64');
    expect(decodeRegistryAuth(std)).toEqual({ username: 'bob', password: 'secret:x' });
  });

  it('treats an empty header or empty object as no credentials', () => {
    expect(decodeRegistryAuth(undefined)).toBeUndefined();
    expect(decodeRegistryAuth('')).toBeUndefined();
    expect(decodeRegistryAuth(encodeRegistryAuth({}))).toBeUndefined();
  });

  it('refuses garbage with a typed error', () => {
    expect(() => decodeRegistryAuth('not json at all')).toThrow(RegistryAuthHeaderError);
    expect(() => decodeRegistryAuth(Buffer.from('{"username": 5}').toString('base64url'))).toThrow(/username is not a string/);
  });
});

describe('WWW-Authenticate challenges', () => {
  it('parses a Bearer challenge with quoted parameters', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"');
    expect(c).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
    });
  });

  it('parses Basic, escaped quotes and several challenges', () => {
    expect(parseChallenges('Basic realm="shoal \\"test\\""')).toEqual([{ scheme: 'basic', params: { realm: 'shoal "test"' } }]);
    const both = parseChallenges('Basic realm="a", Bearer realm="https://t/x",service=s');
    expect(both.map((c) => c.scheme)).toEqual(['basic', 'bearer']);
    expect(both[1]?.params).toEqual({ realm: 'https://t/x', service: 's' });
    expect(parseChallenges(null)).toEqual([]);
  });
});
