// The public API of ivshm.
export * from './errors.js';
export { Broker, defaultLinkName, type BrokerOptions, type BrokerLog, type BrokerPeerStatus } from './ivshmem/broker.js';
export { connect, Device, type ConnectOptions } from './ivshmem/device.js';
export { LocalLink, LocalEndpoint, type LocalLinkOptions } from './ivshmem/local-link.js';
export type { IvshmemEndpoint, InterruptEvent, SectionSizes, EndpointEvents } from './ivshmem/endpoint.js';
export {
  IVSHM_REG_ID,
  IVSHM_REG_MAX_PEERS,
  IVSHM_REG_INT_CONTROL,
  IVSHM_REG_DOORBELL,
  IVSHM_REG_STATE,
  type EndpointCounters,
} from './ivshmem/endpoint-base.js';
export { parseSize, resolveLinkParams, regionLayout, type LinkParams } from './ivshmem/layout.js';
export { QemuServer, qemuShmSize, type QemuServerOptions } from './ivshmem/qemu/server.js';
export { connectQemu, QemuEndpoint, type ConnectQemuOptions } from './ivshmem/qemu/client.js';
