// virtio 1.2 split virtqueue: constants, byte layout and the event-index
// rule (docs/spec-virtio.md §1, §2; virtio 1.2 §2.7). Everything is
// little-endian; indices are free-running 16-bit counters that wrap.
import { InvalidArgumentError } from '../errors.js';

/** Descriptor flag: the chain continues at `next` (virtio 1.2 split ring). */
export const VIRTQ_DESC_F_NEXT = 1;
/** Descriptor flag: the buffer is device-writable. */
export const VIRTQ_DESC_F_WRITE = 2;
/** Descriptor flag: the buffer holds an indirect descriptor table (refused by ivshm queues). */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** Available-ring flag: the driver asks for no interrupts (without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Used-ring flag: the device asks for no notifications (without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Feature bit 28: indirect descriptors. */
export const VIRTIO_F_INDIRECT_DESC = 28;
/** Feature bit 29: event-index notification suppression. */
export const VIRTIO_F_EVENT_IDX = 29;
/** Feature bit 32: virtio 1.x. */
export const VIRTIO_F_VERSION_1 = 32;
/** Feature bit 33: the device accesses memory through the platform (required over ivshmem). */
export const VIRTIO_F_ACCESS_PLATFORM = 33;
/** Feature bit 35: buffers are used in the order they were made available. */
export const VIRTIO_F_IN_ORDER = 35;

/** Queue Size limit of a split ring (power of 2, at most 32768). */
export const VIRTQ_MAX_SIZE = 32768;
/** struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; } */
export const VIRTQ_DESC_SIZE = 16;
/** struct virtq_used_elem { le32 id; le32 len; } */
export const VIRTQ_USED_ELEM_SIZE = 8;

/**
 * Notify iff the other side's event index lies in [old, new) (mod 2^16),
 * i.e. the entry at position event_idx was among those just published:
 * vring_need_event(event_idx, new, old) = (u16)(new - event_idx - 1) < (u16)(new - old).
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

export const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
export const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Byte offsets of every field of one split ring, relative to the section start. */
export interface SplitRingLayout {
  readonly num: number;
  /** Descriptor table (16·num bytes, align 16). */
  readonly desc: number;
  /** Driver area: flags u16, idx u16, ring[num] u16, used_event u16 (align 2). */
  readonly avail: number;
  readonly availIdx: number;
  readonly availRing: number;
  readonly usedEvent: number;
  /** Device area: flags u16, idx u16, ring[num] {u32 id, u32 len}, avail_event u16 (align 4). */
  readonly used: number;
  readonly usedIdx: number;
  readonly usedRing: number;
  readonly availEvent: number;
  /** vring_size(num, align): bytes from `desc` to the end of avail_event. */
  readonly size: number;
}

export function checkQueueSize(num: number, what: string): void {
  if (!isPowerOfTwo(num) || num > VIRTQ_MAX_SIZE) {
    throw new InvalidArgumentError(`${what}: queue size ${num} must be a power of 2 in 1..${VIRTQ_MAX_SIZE} (virtio 1.2 split ring)`);
  }
}

/** Offsets of the three areas given their start addresses (the modern, independently placed form). */
export function splitRingAreas(num: number, desc: number, avail: number, used: number): SplitRingLayout {
  checkQueueSize(num, 'split ring');
  if (desc % 16 || avail % 2 || used % 4) {
    throw new InvalidArgumentError(`split ring areas must be aligned (desc 16, avail 2, used 4); got ${desc}, ${avail}, ${used}`);
  }
  return {
    num,
    desc,
    avail,
    availIdx: avail + 2,
    availRing: avail + 4,
    usedEvent: avail + 4 + 2 * num,
    used,
    usedIdx: used + 2,
    usedRing: used + 4,
    availEvent: used + 4 + VIRTQ_USED_ELEM_SIZE * num,
    size: used + 4 + VIRTQ_USED_ELEM_SIZE * num + 2 - desc,
  };
}

/**
 * The legacy contiguous packing (Linux vring_init): descriptor table, avail
 * ring with used_event right after it, used ring at the next multiple of
 * `align`. ivshmem-net uses this with align 64 (docs/spec-net.md §2).
 */
export function splitRingLayout(num: number, align: number, base = 0): SplitRingLayout {
  const avail = base + VIRTQ_DESC_SIZE * num;
  const used = base + alignUp(VIRTQ_DESC_SIZE * num + 2 * (3 + num), align);
  return splitRingAreas(num, base, avail, used);
}

/** vring_size(num, align) = round_up(16N + 2(3+N), align) + 2*3 + 8N. */
export function vringSize(num: number, align: number): number {
  return alignUp(VIRTQ_DESC_SIZE * num + 2 * (3 + num), align) + 2 * 3 + VIRTQ_USED_ELEM_SIZE * num;
}
