import { describe, expect, it } from 'vitest';
import { InvalidReferenceError } from './errors.js';
import { canonicalReference, familiarReference, parseReference } from './reference.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('image references are parsed as Docker parses them', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1', 'busybox:1'],
    ['team/app:v2', 'docker.io/team/app:v2', 'team/app:v2'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['localhost:5000/x:tag', 'localhost:5000/x:tag', 'localhost:5000/x:tag'],
    ['127.0.0.1:5000/a/b/c', '127.0.0.1:5000/a/b/c:latest', '127.0.0.1:5000/a/b/c:latest'],
    [`host:5000/team/app@${DIGEST}`, `host:5000/team/app@${DIGEST}`, `host:5000/team/app@${DIGEST}`],
    [`busybox:1.36@${DIGEST}`, `docker.io/library/busybox:1.36@${DIGEST}`, `busybox:1.36@${DIGEST}`],
    ['Registry.Example.com/app', 'Registry.Example.com/app:latest', 'Registry.Example.com/app:latest'],
    ['[::1]:5000/app:1', '[::1]:5000/app:1', '[::1]:5000/app:1'],
    ['my_app.v2-x:1.0_rc-1', 'docker.io/library/my_app.v2-x:1.0_rc-1', 'my_app.v2-x:1.0_rc-1'],
  ])('%s → %s', (input, canonical, familiar) => {
    const ref = parseReference(input);
    expect(canonicalReference(ref)).toBe(canonical);
    expect(familiarReference(ref)).toBe(familiar);
  });

  it('keeps the tag undefined when pulling by digest alone', () => {
    const ref = parseReference(`localhost:5000/x@${DIGEST}`);
    expect(ref.tag).toBeUndefined();
    expect(ref.digest).toBe(DIGEST);
    expect(ref.domain).toBe('localhost:5000');
    expect(ref.path).toBe('x');
  });

  it.each([
    ['', /empty reference/],
    [' busybox', /white space/],
    ['Busybox', /must be lowercase/],
    ['busybox:', /malformed tag/],
    ['busybox:-x', /malformed tag/],
    [`busybox:${'t'.repeat(129)}`, /malformed tag/],
    ['busybox@sha256:abc', /malformed digest/],
    [`busybox@md5:${'a'.repeat(32)}`, /unsupported digest algorithm/],
    [`busybox@sha256:${'AB'.repeat(32)}`, /64 lowercase hex/],
    ['host:5000/', /missing repository name/],
    [':tag', /missing repository name/],
    ['a//b', /malformed repository path component ""/],
    ['app/-x', /malformed repository path component "-x"/],
    ['bad_host.-x.com/app', /malformed registry host/],
    ['host:port/app', /malformed registry host/],
    [`x.io/${'a'.repeat(260)}`, /longer than 255/],
  ])('refuses %j with a clear reason', (input, reason) => {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidReferenceError);
    expect((caught as InvalidReferenceError).code).toBe('ERR_IMAGE_INVALID_REFERENCE');
    expect((caught as Error).message).toMatch(reason);
    expect((caught as Error).message).toContain(JSON.stringify(input));
  });
});
