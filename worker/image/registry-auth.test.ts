// Pulls from registries that require credentials: htpasswd (Basic) and token (Bearer) auth, with
// the credentials passed the way Docker passes them (X-Registry-Auth).
import { afterEach, afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTar, busyboxEntries, pushImage, startRegistry, type RegistryFixture } from '../testing/registry.js';
import { encodeRegistryAuth } from './auth.js';
import { ImagePullError } from './errors.js';
import type { ImageStore } from './store.js';
import { Cleanup, listTree } from './store-test-support.js';

const cleanup = new Cleanup();
afterEach(async () => {
  await cleanup.run();
});

async function uniqueBusybox(name: string): Promise<Buffer> {
  return buildTar([...(await busyboxEntries()), { type: 'file', path: 'test-name', content: name }]);
}

async function expectPullError(store: ImageStore, image: string, code: string, cause: RegExp, pullOptions = {}): Promise<void> {
  const before = await listTree(store.root);
  const err: unknown = await store.pull(image, pullOptions).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImagePullError);
  expect({ code: (err as ImagePullError).code, message: (err as Error).message }).toMatchObject({ code, message: expect.stringMatching(cause) });
  expect((err as Error).message.startsWith(`pull ${image}: `)).toBe(true);
  expect(await listTree(store.root)).toEqual(before);
}

describe('registries with basic auth (htpasswd)', () => {
  let authReg: RegistryFixture;
  beforeAll(async () => {
    authReg = await startRegistry({ basicAuth: { username: 'alice', password: 'correct horse' } });
    await pushImage(authReg, { repository: 'private/app', tag: 'v1', layers: [await uniqueBusybox('private')] });
  });
  afterAll(async () => {
    await authReg?.stop();
  });

  it('pulls with the credentials passed as X-Registry-Auth', async () => {
    const store = await cleanup.store();
    const registryAuth = encodeRegistryAuth({ username: 'alice', password: 'correct horse', serveraddress: authReg.host });
    const { image } = await store.pull(`${authReg.host}/private/app:v1`, { registryAuth });
    expect(image.diffIds).toHaveLength(1);
  });

  it('refuses a wrong password and missing credentials with a clear error', async () => {
    const store = await cleanup.store();
    const wrong = encodeRegistryAuth({ username: 'alice', password: 'battery staple', serveraddress: authReg.host });
    await expectPullError(store, `${authReg.host}/private/app:v1`, 'ERR_IMAGE_UNAUTHORIZED', /refused the credentials given \(wrong user name or password\?\)/, { registryAuth: wrong });
    await expectPullError(store, `${authReg.host}/private/app:v1`, 'ERR_IMAGE_UNAUTHORIZED', /authentication required and no registry credentials were given/);
    await expectPullError(store, `${authReg.host}/private/app:v1`, 'ERR_IMAGE_BAD_CREDENTIALS', /X-Registry-Auth is not base64url-encoded JSON/, { registryAuth: '%%%' });
  });
});

describe('registries with token auth (Bearer, realm from WWW-Authenticate)', () => {
  let tokenReg: RegistryFixture;
  let pushed: Awaited<ReturnType<typeof pushImage>>;
  beforeAll(async () => {
    tokenReg = await startRegistry({ tokenAuth: { username: 'bob', password: 's3cret' } });
    pushed = await pushImage(tokenReg, { repository: 'team/app', tag: 'v1', layers: [await uniqueBusybox('token'), buildTar([{ type: 'file', path: 'top', content: 'top' }])] });
  });
  afterAll(async () => {
    await tokenReg?.stop();
  });

  it('fetches a token with the credentials once and uses it for every request of the pull', async () => {
    const store = await cleanup.store();
    const registryAuth = encodeRegistryAuth({ username: 'bob', password: 's3cret', serveraddress: tokenReg.host });
    const before = tokenReg.tokenRequests.length;
    const { image } = await store.pull(`${tokenReg.host}/team/app:v1`, { registryAuth });
    expect(image.diffIds).toEqual(pushed.diffIds);
    expect(tokenReg.tokenRequests.slice(before)).toEqual(['bob repository:team/app:pull']);
    const mount = await store.mountRootfs(image.id, await cleanup.tempDir('ctr'));
    cleanup.defer(() => mount.unmount());
  });

  it('refuses wrong and missing credentials with a clear error', async () => {
    const store = await cleanup.store();
    const wrong = encodeRegistryAuth({ username: 'bob', password: 'nope' });
    await expectPullError(store, `${tokenReg.host}/team/app:v1`, 'ERR_IMAGE_UNAUTHORIZED', /token server refused: HTTP 401.*refused the credentials given/, { registryAuth: wrong });
    await expectPullError(store, `${tokenReg.host}/team/app:v1`, 'ERR_IMAGE_UNAUTHORIZED', /token server refused: HTTP 401.*no registry credentials were given/);
  });
});
