// The store keeps task specs in Docker's shape (manager/store/types.ts); the agent hands them to the
// executor as they are. This fails to typecheck if the two shapes drift apart.
import { describe, expect, it } from 'vitest';
import type { TaskSpec as StoreTaskSpec } from '../../manager/store/types.js';
import type { TaskSpec } from './types.js';

function asExecutorSpec(spec: StoreTaskSpec): TaskSpec {
  return spec;
}

describe('TaskSpec', () => {
  it('a stored task spec is an executor task spec', () => {
    const stored: StoreTaskSpec = {
      ContainerSpec: {
        Image: 'busybox',
        Command: ['sh'],
        Mounts: [{ Type: 'bind', Source: '/a', Target: '/b', ReadOnly: true }],
        Secrets: [{ SecretID: 's', SecretName: 'n', File: { Name: 'n', UID: '0', GID: '0', Mode: 0o444 } }],
      },
      Resources: { Limits: { NanoCPUs: 1e9, MemoryBytes: 1 << 20, Pids: 10 } },
    };
    expect(asExecutorSpec(stored).ContainerSpec?.Image).toBe('busybox');
  });
});
