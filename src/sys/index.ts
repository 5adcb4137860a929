// The OS layer: everything above imports from here, never from koffi.
export * from './fd.js';
export * from './memfd.js';
export * from './mmap.js';
export * from './eventfd.js';
export * from './poll.js';
export * from './unix-socket.js';
export { K as SYS, errnoName, type Pointer } from './libc.js';
