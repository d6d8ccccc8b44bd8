// Typed errors of the allocator. Their messages reach users through the control API (network
// create, swarm init) and through task and service status, so each names what it was allocating,
// from what, and what to do about it.

export type AllocatorErrorCode =
  | 'ERR_ALLOC_INVALID_POOL'
  | 'ERR_ALLOC_INVALID_SUBNET'
  | 'ERR_ALLOC_SUBNET_OVERLAP'
  | 'ERR_ALLOC_POOL_EXHAUSTED'
  | 'ERR_ALLOC_SUBNET_FULL'
  | 'ERR_ALLOC_VNI_EXHAUSTED'
  | 'ERR_ALLOC_PORT_IN_USE'
  | 'ERR_ALLOC_PORTS_EXHAUSTED'
  | 'ERR_ALLOC_NETWORK_MISSING';

export class AllocatorError extends Error {
  override readonly name = 'AllocatorError';
  constructor(
    readonly code: AllocatorErrorCode,
    message: string,
  ) {
    super(message);
  }
}
