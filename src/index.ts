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
export { regionLayout } from './ivshmem/layout.js';
export { checkLinkParams, resolveLinkParams, type LinkParams, type LinkParamsInput, type ParamProblem } from './ivshmem/params.js';
export { parseSize } from './units.js';
export { QemuServer, qemuShmSize, type QemuServerOptions } from './ivshmem/qemu/server.js';
export { connectQemu, QemuEndpoint, type ConnectQemuOptions } from './ivshmem/qemu/client.js';
export * from './virtio/index.js';
export {
  openNet,
  IVSHM_NET_STATE_RESET,
  IVSHM_NET_STATE_INIT,
  IVSHM_NET_STATE_READY,
  IVSHM_NET_STATE_RUN,
  type NetEndpoint,
  type NetOptions,
  type NetStateEvent,
  type NetViolation,
} from './net/endpoint.js';
export type { NetCounters } from './net/counters.js';
export { ivshmNetSizing, type NetSizing } from './net/sizing.js';
export { deriveMac } from './net/mac.js';
export { TapBridge, type BridgeLink, type TapBridgeCounters, type TapBridgeOptions } from './net/tap-bridge.js';
export { openTap, TapDevice, type TapOptions } from './sys/tap.js';
export { withNetns } from './sys/netns.js';
export * from './channel/index.js';
export { cellLinks, cellConnectOptions, type CellLinkEndpoint } from './ivshmem/cell-links.js';
export { connectCellLink, CounterReporter, type LinkCounters } from './system/cell-env.js';
export { checkSystemFile, checkSystemText, type CheckResult, type Problem } from './system/check.js';
export { Supervisor, type SupervisorOptions } from './system/supervisor.js';
export type { SystemStatus, CellStatus, LinkStatus, RateSample } from './system/status.js';
export { controlRequest } from './system/control-client.js';
export type { ControlRequest, ControlResults } from './system/control-protocol.js';
export { upSystem, type UpOptions, type RunningSystem } from './system/up.js';
export { runDemo } from './demo/system.js';
export { terminalProgress } from './system/progress.js';
