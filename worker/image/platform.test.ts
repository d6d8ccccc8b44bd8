import { describe, expect, it } from 'vitest';
import { choosePlatform, formatPlatform, hostPlatform, type Platform } from './platform.js';

const entry = (p: Platform | undefined, name: string): { platform: Platform | undefined; name: string } => ({ platform: p, name });

describe('platform choice from a manifest list', () => {
  it('describes this machine in OCI terms', () => {
    const p = hostPlatform();
    expect(p.os).toBe('linux');
    expect(p.architecture).not.toBe('x64');
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7');
  });

  it('needs the same os and architecture', () => {
    const list = [entry({ os: 'windows', architecture: 'amd64' }, 'win'), entry({ os: 'linux', architecture: 's390x' }, 's390x'), entry(undefined, 'attestation')];
    expect(choosePlatform(list, { os: 'linux', architecture: 'amd64' })).toBeUndefined();
    expect(choosePlatform([...list, entry({ os: 'linux', architecture: 'amd64' }, 'ok')], { os: 'linux', architecture: 'amd64' })?.name).toBe('ok');
  });

  it('treats arm64 without a variant as v8 and prefers an exact variant', () => {
    const list = [entry({ os: 'linux', architecture: 'arm64', variant: 'v9' }, 'v9'), entry({ os: 'linux', architecture: 'arm64' }, 'plain')];
    expect(choosePlatform(list, { os: 'linux', architecture: 'arm64', variant: 'v8' })?.name).toBe('plain');
  });

  it('runs an older arm variant on a newer CPU, the newest that fits', () => {
    const list = [entry({ os: 'linux', architecture: 'arm', variant: 'v5' }, 'v5'), entry({ os: 'linux', architecture: 'arm', variant: 'v6' }, 'v6'), entry({ os: 'linux', architecture: 'arm', variant: 'v8' }, 'v8')];
    expect(choosePlatform(list, { os: 'linux', architecture: 'arm', variant: 'v7' })?.name).toBe('v6');
    expect(choosePlatform(list.slice(2), { os: 'linux', architecture: 'arm', variant: 'v7' })).toBeUndefined();
  });
});
