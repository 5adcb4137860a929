// Typed views over ring fields in a shared section. A JS typed array is
// bounds-checked, so a view built over exactly the ring area can never read
// outside it whatever index a peer makes us compute; out-of-range indices are
// rejected before use anyway. Shared indices go through Atomics so that V8
// neither caches a load across iterations nor reorders the publishing store
// (Atomics are sequentially consistent: the store is the release barrier and
// a following Atomics.load cannot move above it, which is the full barrier
// virtio asks for before reading the other side's event index).
import os from 'node:os';
import { InvalidArgumentError, NotSupportedError } from '../errors.js';

if (os.endianness() !== 'LE') {
  // virtio rings are little-endian; the typed arrays below use host order.
  throw new NotSupportedError('ivshm virtqueues need a little-endian host');
}

function check(bytes: Uint8Array, offset: number, length: number, align: number, what: string): number {
  const abs = bytes.byteOffset + offset;
  if (!Number.isInteger(offset) || offset < 0 || length < 0 || offset + length > bytes.byteLength) {
    throw new InvalidArgumentError(`${what}: ${length} bytes at offset ${offset} do not fit the ${bytes.byteLength}-byte section`);
  }
  if (abs % align !== 0) {
    throw new InvalidArgumentError(`${what}: offset ${offset} is not ${align}-byte aligned in memory`);
  }
  return abs;
}

export function u16View(bytes: Uint8Array, offset: number, count: number, what: string): Uint16Array {
  return new Uint16Array(bytes.buffer, check(bytes, offset, count * 2, 2, what), count);
}

export function u32View(bytes: Uint8Array, offset: number, count: number, what: string): Uint32Array {
  return new Uint32Array(bytes.buffer, check(bytes, offset, count * 4, 4, what), count);
}
