// The public API of ivshm: what a user needs to run links, join them, speak
// ivshmem-net, virtio and channels over them, and run systems of cells. Each
// name here is a decision, pinned by test/index.test.ts; helpers and raw OS
// calls stay inside the package.

// Errors: one class per code (README "Errors").
export {
  IvshmError,
  ConfigError,
  InvalidArgumentError,
  OsError,
  PermissionError,
  NotSupportedError,
  ProtocolError,
  PeerViolationError,
  RefusedError,
  PeerGoneError,
  ClosedError,
  TimeoutError,
  BusyError,
  type IvshmErrorCode,
} from './errors.js';

// ivshmem 2.0 links: the broker (hypervisor role) and the peer device.
export { Broker, type BrokerOptions, type BrokerLog, type BrokerPeerStatus } from './ivshmem/broker.js';
export { connect, type Device, type ConnectOptions } from './ivshmem/device.js';
export { cellLinks, type CellLinkEndpoint } from './ivshmem/cell-links.js';
export { LocalLink, type LocalEndpoint, type LocalLinkOptions } from './ivshmem/local-link.js';
export type { IvshmemEndpoint, InterruptEvent, SectionSizes, EndpointEvents } from './ivshmem/endpoint.js';
export {
  IVSHM_REG_ID,
  IVSHM_REG_MAX_PEERS,
  IVSHM_REG_INT_CONTROL,
  IVSHM_REG_DOORBELL,
  IVSHM_REG_STATE,
  type EndpointCounters,
} from './ivshmem/endpoint-base.js';
export { checkLinkParams, type LinkParams, type LinkParamsInput, type ParamProblem } from './ivshmem/params.js';
export { type WaitMode, type WaitOptions } from './ivshmem/wait.js';

// QEMU ivshmem v1 (no isolation: one shared read-write file).
export { QemuServer, type QemuServerOptions } from './ivshmem/qemu/server.js';
export { connectQemu, type QemuEndpoint, type ConnectQemuOptions } from './ivshmem/qemu/client.js';

// Split virtqueues (virtio 1.2) over any byte section.
export { VirtqDriver, type VirtqDriverOptions, type DriverSegment } from './virtio/driver.js';
export { VirtqDevice, type VirtqDeviceOptions } from './virtio/device.js';
export {
  splitRingLayout,
  vringNeedEvent,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_VERSION_1,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_IN_ORDER,
  VIRTQ_MAX_SIZE,
  type SplitRingLayout,
} from './virtio/split-ring.js';
export { VIRTQ_VIOLATIONS, type VirtqViolation, type ViolationInfo } from './virtio/violation.js';

// ivshmem-net (protocol 0x0001): Ethernet frames between two cells, and a TAP device for them.
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
export { openTap, type TapDevice, type TapOptions } from './sys/tap.js';

// Message channels and publish-subscribe (protocols 0x4000-0x7FFF).
export {
  Channel,
  type ChannelOptions,
  type ChannelEvents,
  type ChannelCounters,
  type PeerUpEvent,
  type PeerDownEvent,
  type ViolationEvent,
} from './channel/channel.js';
export { type Message, type Loan } from './channel/message.js';
export { Publisher, type SampleLoan, type PublisherOptions, type PublisherEvents, type PublisherCounters, type OverflowPolicy } from './channel/publisher.js';
export { Subscriber, type SubscriberOptions, type SubscriberEvents, type SubscriberCounters } from './channel/subscriber.js';
export { type Sample } from './channel/sample.js';
export { IVSHM_PROTO_CHANNEL, IVSHM_PROTO_USER_MIN, IVSHM_PROTO_USER_MAX, outputSizeFor } from './channel/layout.js';

// Systems of cells: check a system file, run it, talk to a running one.
export { checkSystemFile, checkSystemText, type CheckResult, type Problem } from './system/check.js';
export { upSystem, type UpOptions, type RunningSystem } from './system/up.js';
export { Supervisor, type SupervisorOptions } from './system/supervisor.js';
export type { SystemStatus, CellStatus, LinkStatus, RateSample } from './system/status.js';
export { controlRequest } from './system/control-client.js';
export type { ControlRequest, ControlResults } from './system/control-protocol.js';
export { CounterReporter, type LinkCounters } from './system/cell-env.js';
