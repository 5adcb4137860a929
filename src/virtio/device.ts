// Device half of a split virtqueue (virtio 1.2 §2.7; docs/spec-virtio.md).
// The device reads the driver's descriptor table and avail ring and writes
// the used ring. Every value read from the driver's areas is read once into
// private variables and checked before use: avail.idx may move by at most
// Queue Size, heads and links must be < Queue Size, a chain is at most Queue
// Size long (no loops), INDIRECT is refused (not negotiated), readable
// segments come before writable ones, the total is < 2^32. A violation
// latches the queue broken.
import { InvalidArgumentError } from '../errors.js';
import { checkQueueSize, vringNeedEvent, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_ELEM_SIZE, VIRTQ_USED_F_NO_NOTIFY } from './split-ring.js';
import { u16View, u32View } from './views.js';
import { bump, VIRTQ_VIOLATIONS, type ViolationCounters, type ViolationSink, type VirtqViolation } from './violation.js';

/** Queue size, features and placement of a device-side split virtqueue. */
export interface VirtqDeviceOptions {
  num: number;
  /** Section holding the descriptor table and avail ring: written by the driver, only read here. */
  driverSection: Uint8Array;
  descOffset: number;
  availOffset: number;
  /** Section holding the used ring: written by this device. */
  deviceSection: Uint8Array;
  usedOffset: number;
  eventIdx?: boolean;
  /** Every buffer is exactly one descriptor with flags 0 (ivshmem-net); anything else is 'desc-flags'. */
  singleDescriptor?: boolean;
  onViolation?: ViolationSink;
  name?: string;
}

/** The device half of a split virtqueue (virtio 1.2) over a byte section: takes chains from the driver after validating every descriptor (docs/spec-virtio.md). */
export class VirtqDevice {
  readonly num: number;
  readonly name: string;
  readonly eventIdx: boolean;
  readonly singleDescriptor: boolean;
  broken: VirtqViolation | null = null;
  readonly violations: ViolationCounters = {};
  onViolation: ViolationSink | undefined;

  private readonly desc: Uint32Array;
  private readonly avail: Uint16Array;
  private readonly usedHdr: Uint16Array;
  private readonly usedElems: Uint32Array;
  private readonly availEvent: Uint16Array;
  private readonly mask: number;
  private readonly inFlight: Uint8Array;

  /** Next avail ring position to consume (free-running). */
  lastAvail = 0;
  /** Shadow of used.idx (free-running). */
  usedIdx = 0;
  private notifyOld = 0;

  /** The chain returned by the last pop(): snapshots, safe to use after validation. */
  readonly chainAddr: Float64Array;
  readonly chainLen: Uint32Array;
  readonly chainFlags: Uint16Array;
  chainCount = 0;
  /** Sum of the chain's lengths. */
  chainBytes = 0;

  constructor(o: VirtqDeviceOptions) {
    checkQueueSize(o.num, o.name ?? 'virtqueue device');
    const n = o.num;
    this.num = n;
    this.mask = n - 1;
    this.name = o.name ?? 'virtqueue';
    this.eventIdx = o.eventIdx ?? true;
    this.singleDescriptor = o.singleDescriptor ?? false;
    this.onViolation = o.onViolation;
    this.desc = u32View(o.driverSection, o.descOffset, 4 * n, `${this.name} descriptor table`);
    this.avail = u16View(o.driverSection, o.availOffset, 3 + n, `${this.name} avail ring`);
    this.usedHdr = u16View(o.deviceSection, o.usedOffset, 2, `${this.name} used ring header`);
    this.usedElems = u32View(o.deviceSection, o.usedOffset + 4, 2 * n, `${this.name} used ring`);
    this.availEvent = u16View(o.deviceSection, o.usedOffset + 4 + VIRTQ_USED_ELEM_SIZE * n, 1, `${this.name} avail_event`);
    this.inFlight = new Uint8Array(n);
    this.chainAddr = new Float64Array(n);
    this.chainLen = new Uint32Array(n);
    this.chainFlags = new Uint16Array(n);
  }

  /** Zero the device-owned area (used ring + avail_event) and start at index 0. */
  reset(): void {
    this.usedHdr.fill(0);
    this.usedElems.fill(0);
    this.availEvent.fill(0);
    this.resetShadow();
  }

  /** Start at index 0 without touching shared memory (the area was zeroed by its owner). */
  resetShadow(): void {
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.notifyOld = 0;
    this.inFlight.fill(0);
    this.chainCount = 0;
    this.chainBytes = 0;
    this.broken = null;
  }

  /** Chains the driver has made available that we have not popped (0 if broken; an invalid index latches). */
  pendingAvail(): number {
    if (this.broken !== null) return 0;
    const idx = Atomics.load(this.avail, 1);
    const pending = (idx - this.lastAvail) & 0xffff;
    if (pending > this.num) {
      this.violate('avail-idx-jump', { availIdx: idx, lastAvail: this.lastAvail });
      return 0;
    }
    return pending;
  }

  /**
   * Take the next available chain: returns its head (chainAddr/chainLen/
   * chainFlags/chainCount describe it) or -1 if none or broken.
   */
  pop(): number {
    if (this.pendingAvail() === 0) return -1;
    const head = this.avail[2 + (this.lastAvail & this.mask)]!;
    if (head >= this.num) return this.violate('avail-head-range', { head, lastAvail: this.lastAvail });
    if (this.inFlight[head] !== 0) return this.violate('avail-head-in-flight', { head });
    const d = this.desc;
    let i = head;
    let count = 0;
    let total = 0;
    let seenWrite = false;
    for (;;) {
      if (count === this.num) return this.violate('desc-chain-loop', { head });
      const b = i << 2;
      const lo = d[b]!;
      const hi = d[b + 1]!;
      const len = d[b + 2]!;
      const fn = d[b + 3]!; // flags | next << 16, read once
      const flags = fn & 0xffff;
      const next = fn >>> 16;
      if (this.singleDescriptor && flags !== 0) return this.violate('desc-flags', { head, index: i, flags });
      if (flags & VIRTQ_DESC_F_INDIRECT) return this.violate('desc-indirect', { head, index: i });
      if (flags & VIRTQ_DESC_F_WRITE) seenWrite = true;
      else if (seenWrite) return this.violate('desc-write-order', { head, index: i });
      total += len;
      if (total > 0xffffffff) return this.violate('desc-chain-len', { head });
      this.chainAddr[count] = hi * 4294967296 + lo;
      this.chainLen[count] = len;
      this.chainFlags[count] = flags;
      count++;
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
      if (next >= this.num) return this.violate('desc-next-range', { head, index: i, next });
      i = next;
    }
    this.chainCount = count;
    this.chainBytes = total;
    this.inFlight[head] = 1;
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    return head;
  }

  /** Return a popped chain with `len` bytes written (not visible until publishUsed()). */
  push(head: number, len: number): void {
    if (!Number.isInteger(head) || head < 0 || head >= this.num || this.inFlight[head] === 0) {
      throw new InvalidArgumentError(`${this.name}: push of descriptor ${head}, which this device does not hold`);
    }
    this.inFlight[head] = 0;
    const slot = (this.usedIdx & this.mask) << 1;
    this.usedElems[slot] = head;
    this.usedElems[slot + 1] = len >>> 0;
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
  }

  /** Store-release used.idx. */
  publishUsed(): void {
    Atomics.store(this.usedHdr, 1, this.usedIdx);
  }

  /** Whether the driver asked for an interrupt for what was used since the last call. */
  needsNotify(): boolean {
    const newIdx = this.usedIdx;
    const oldIdx = this.notifyOld;
    this.notifyOld = newIdx;
    if (newIdx === oldIdx) return false;
    if (this.eventIdx) return vringNeedEvent(Atomics.load(this.avail, 2 + this.num), newIdx, oldIdx);
    return (Atomics.load(this.avail, 0) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Ask to be notified of the next available buffer (avail_event =
   * lastAvail, or clear VIRTQ_USED_F_NO_NOTIFY). Returns true if something
   * is already pending (poll again: race).
   */
  enableNotify(): boolean {
    if (this.eventIdx) Atomics.store(this.availEvent, 0, this.lastAvail);
    else Atomics.store(this.usedHdr, 0, Atomics.load(this.usedHdr, 0) & ~VIRTQ_USED_F_NO_NOTIFY);
    return this.pendingAvail() > 0;
  }

  disableNotify(): void {
    if (!this.eventIdx) Atomics.store(this.usedHdr, 0, Atomics.load(this.usedHdr, 0) | VIRTQ_USED_F_NO_NOTIFY);
  }

  /** avail_event as we wrote it. */
  get availEventValue(): number {
    return this.availEvent[0]!;
  }

  private violate(reason: VirtqViolation, detail: Record<string, unknown>): -1 {
    if (this.broken === null) {
      this.broken = reason;
      bump(this.violations, reason);
      this.onViolation?.({ reason, message: `${this.name}: ${VIRTQ_VIOLATIONS[reason]}`, ...detail });
    }
    return -1;
  }
}
