// Split virtqueue (virtio 1.2) over any byte section: layout, driver half, device half.
export * from './split-ring.js';
export * from './violation.js';
export { VirtqDriver, type VirtqDriverOptions, type DriverSegment } from './driver.js';
export { VirtqDevice, type VirtqDeviceOptions } from './device.js';
