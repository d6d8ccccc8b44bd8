export { Allocator, type AllocatorOptions, type AllocatorPassReport } from './allocator.js';
export { AllocationState, isAllocated, poolOf, subnetOf, type NetworkFields } from './state.js';
export { AllocatorError, type AllocatorErrorCode } from './errors.js';
export { parsePoolConfig, nextFreeSubnet, DEFAULT_ADDR_POOL, DEFAULT_SUBNET_SIZE, type AddressPoolConfig } from './subnet-pool.js';
export { NetworkAddresses } from './network-addresses.js';
export { VniSet, vniOf, FIRST_VNI, VNI_OPTION } from './vni.js';
export { IngressPorts, DYNAMIC_PORT_FIRST, DYNAMIC_PORT_LAST } from './ports.js';
export { ingressNetwork, initialAllocation } from './init.js';
export { desiredEndpoint, taskAttachments, needsIngress } from './endpoints.js';
