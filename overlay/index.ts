// The overlay data plane's public surface (see README.md).
export { OverlayDataPlane, type OverlayDataPlaneOptions, type ReconcileRequest, type ReconcileReport } from './data-plane.js';
export { OverlayNetwork, type PeerUpdate } from './network.js';
export {
  validateOverlayOptions,
  validateNetworkSpec,
  OVERLAY_MTU,
  VXLAN_PORT,
  MIN_VNI,
  type OverlayNetworkSpec,
  type EndpointSpec,
  type PeerSpec,
  type ServiceSpec,
  type AttachedEndpoint,
} from './spec.js';
export { OverlayError, OverlayCommandError, EncryptedOverlayUnsupportedError, type OverlayErrorCode } from './errors.js';
export { containerResolvConf, nameserverUpstreams, readHostResolvConf, parseResolvConf, type Upstream } from './dns/upstream.js';
export { macFromIpv4 } from './addresses.js';
export { IngressSandbox, type PublishedPort, type IngressSandboxOptions, INGRESS_SANDBOX_ADDR, INGRESS_HOST_ADDR } from './ingress.js';
export { taskNetnsName, ingressSandboxName } from './names.js';
