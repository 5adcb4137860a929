// Reason codes for values read from the other side's ring areas that break
// the split-ring rules (docs/spec-virtio.md §3). A violation latches the queue
// *broken* (Linux vq->broken: "other side has made a mess, don't try any
// more"); it is never thrown into the caller. Recovery is the owner's job
// (for ivshmem-net: a RESET handshake that re-formats the rings).

/** Every reason a virtqueue half latches a queue as broken, with its description (docs/spec-virtio.md). */
export const VIRTQ_VIOLATIONS = {
  /** Device: avail.idx moved by more than Queue Size since we last looked (or went backwards). */
  'avail-idx-jump': 'the driver moved avail.idx by more than the queue size (or backwards)',
  /** Device: avail ring entry names a descriptor >= Queue Size. */
  'avail-head-range': 'an avail ring entry names a descriptor index >= queue size',
  /** Device: the driver made available a head the device still holds. */
  'avail-head-in-flight': 'the driver made available a descriptor chain the device has not returned',
  /** Device: descriptor next >= Queue Size. */
  'desc-next-range': 'a descriptor chain links to an index >= queue size',
  /** Device: chain longer than Queue Size (a loop). */
  'desc-chain-loop': 'a descriptor chain is longer than the queue size (loop)',
  /** Device: INDIRECT set but VIRTIO_F_INDIRECT_DESC not negotiated / not supported. */
  'desc-indirect': 'a descriptor has VIRTQ_DESC_F_INDIRECT, which was not negotiated',
  /** Device: a device-readable descriptor after a device-writable one. */
  'desc-write-order': 'a device-readable descriptor follows a device-writable one',
  /** Device: the chain's total length exceeds 2^32 bytes. */
  'desc-chain-len': 'a descriptor chain totals more than 2^32 bytes',
  /** Device (single-descriptor queues): flags != 0. */
  'desc-flags': 'a descriptor has flags set where this protocol requires 0',
  /** Driver: used.idx moved past what is outstanding (or backwards). */
  'used-idx-jump': 'the device moved used.idx past the outstanding buffers (or backwards)',
  /** Driver: used id >= Queue Size. */
  'used-id-range': 'a used ring element names a descriptor index >= queue size',
  /** Driver: used id is not an outstanding head (never posted or already freed). */
  'used-id-not-head': 'a used ring element names a descriptor that is not an outstanding head',
  /** Driver: used len differs from what the protocol fixes (ivshmem-net: 1). */
  'used-len': 'a used ring element carries a length the protocol does not allow',
  /** Driver (in-order queues): completion out of order. */
  'used-out-of-order': 'a used ring element completes buffers out of order',
} as const;

/** A reason code of `VIRTQ_VIOLATIONS`. */
export type VirtqViolation = keyof typeof VIRTQ_VIOLATIONS;

/** A peer's violation of the virtqueue protocol: reason code and detail. */
export interface ViolationInfo {
  readonly reason: string;
  readonly message: string;
  readonly [key: string]: unknown;
}

export type ViolationSink = (info: ViolationInfo) => void;

/** Per-reason counters; plain object so it serialises. */
export type ViolationCounters = Record<string, number>;

export function bump(counters: ViolationCounters, reason: string): void {
  counters[reason] = (counters[reason] ?? 0) + 1;
}
