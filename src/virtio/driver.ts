// Driver half of a split virtqueue (virtio 1.2 §2.7; docs/spec-virtio.md).
// The driver owns the descriptor table and the avail ring (written here) and
// reads the device's used ring. Everything the driver posted is kept in
// private shadow state (Linux desc_extra): freeing a chain, checking a used
// id and computing lengths never trust bytes read back from shared memory.
import { InvalidArgumentError } from '../errors.js';
import { checkQueueSize, vringNeedEvent, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_SIZE, VIRTQ_USED_ELEM_SIZE, VIRTQ_USED_F_NO_NOTIFY } from './split-ring.js';
import { u16View, u32View } from './views.js';
import { bump, VIRTQ_VIOLATIONS, type ViolationCounters, type ViolationSink, type VirtqViolation } from './violation.js';

/** Queue size, features and placement of a driver-side split virtqueue. */
export interface VirtqDriverOptions {
  /** Queue Size (power of 2). */
  num: number;
  /** Section holding the descriptor table and the avail ring: written by this driver. */
  driverSection: Uint8Array;
  descOffset: number;
  availOffset: number;
  /** Section holding the used ring: written by the device, only read here. */
  deviceSection: Uint8Array;
  usedOffset: number;
  /** VIRTIO_F_EVENT_IDX negotiated (default true). */
  eventIdx?: boolean;
  /** The device must return buffers in the order they were made available (ivshmem-net, VIRTIO_F_IN_ORDER-like). */
  inOrder?: boolean;
  /** Every used element must carry exactly this len (ivshmem-net: 1); checked before anything is freed. */
  expectUsedLen?: number;
  /** Called once when the queue latches broken. */
  onViolation?: ViolationSink;
  /** Name for messages. */
  name?: string;
}

/** One buffer of a descriptor chain the driver posts: bytes the device reads or space it writes. */
export interface DriverSegment {
  addr: number;
  len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE). */
  write?: boolean;
}

/** The driver half of a split virtqueue (virtio 1.2) over a byte section: posts buffers, validates every used element the device returns (docs/spec-virtio.md). */
export class VirtqDriver {
  readonly num: number;
  readonly name: string;
  readonly eventIdx: boolean;
  readonly inOrder: boolean;
  readonly expectUsedLen: number | undefined;
  /** Reason code once a violation latched the queue, else null. */
  broken: VirtqViolation | null = null;
  readonly violations: ViolationCounters = {};
  onViolation: ViolationSink | undefined;

  // Shared areas. desc: 4 u32 per entry: addr lo, addr hi, len, flags | next << 16.
  private readonly desc: Uint32Array;
  private readonly desc16: Uint16Array; // same table: [8i+6] flags, [8i+7] next
  private readonly avail: Uint16Array; // [0] flags, [1] idx, [2..2+num) ring, [2+num] used_event
  private readonly usedHdr: Uint16Array; // [0] flags, [1] idx
  private readonly usedElems: Uint32Array; // 2 per entry: id, len
  private readonly availEvent: Uint16Array; // [0] avail_event (after the used ring)
  private readonly mask: number;

  // Private shadow state (desc_extra).
  private readonly extraAddr: Float64Array;
  private readonly extraLen: Uint32Array;
  private readonly extraFlags: Uint16Array;
  private readonly extraNext: Uint16Array;
  /** Descriptors in the chain headed here while outstanding; 0 = not an outstanding head. */
  private readonly headChainLen: Uint16Array;
  private readonly tokens: unknown[];
  private readonly freeNext: Uint16Array;
  private freeHead = 0;
  /** Free descriptors. */
  numFree = 0;
  /** Heads made available and not yet returned. */
  outstanding = 0;
  private readonly posted: Uint16Array; // FIFO of heads in avail order (for inOrder)
  private postedFront = 0;

  /** Shadow of avail.idx (free-running). */
  availIdx = 0;
  /** Next used ring position to consume (free-running). */
  lastUsed = 0;
  /** avail.idx at the last notification decision. */
  private kickOld = 0;

  /** Length the device wrote in the last element getUsed() returned. */
  usedLen = 0;
  /** Token of the last chain getUsed() returned. */
  usedToken: unknown = undefined;

  constructor(o: VirtqDriverOptions) {
    checkQueueSize(o.num, o.name ?? 'virtqueue driver');
    this.num = o.num;
    this.mask = o.num - 1;
    this.name = o.name ?? 'virtqueue';
    this.eventIdx = o.eventIdx ?? true;
    this.inOrder = o.inOrder ?? false;
    this.expectUsedLen = o.expectUsedLen;
    this.onViolation = o.onViolation;
    const n = o.num;
    this.desc = u32View(o.driverSection, o.descOffset, 4 * n, `${this.name} descriptor table`);
    this.desc16 = new Uint16Array(this.desc.buffer, this.desc.byteOffset, 8 * n);
    this.avail = u16View(o.driverSection, o.availOffset, 3 + n, `${this.name} avail ring`);
    this.usedHdr = u16View(o.deviceSection, o.usedOffset, 2, `${this.name} used ring header`);
    this.usedElems = u32View(o.deviceSection, o.usedOffset + 4, 2 * n, `${this.name} used ring`);
    this.availEvent = u16View(o.deviceSection, o.usedOffset + 4 + VIRTQ_USED_ELEM_SIZE * n, 1, `${this.name} avail_event`);
    this.extraAddr = new Float64Array(n);
    this.extraLen = new Uint32Array(n);
    this.extraFlags = new Uint16Array(n);
    this.extraNext = new Uint16Array(n);
    this.headChainLen = new Uint16Array(n);
    this.tokens = new Array<unknown>(n).fill(undefined);
    this.freeNext = new Uint16Array(n);
    this.posted = new Uint16Array(n);
    this.resetShadow();
  }

  /** Zero the driver-owned areas and start over (indices 0, all descriptors free). */
  reset(): void {
    this.desc.fill(0);
    this.avail.fill(0);
    this.resetShadow();
  }

  private resetShadow(): void {
    const n = this.num;
    for (let i = 0; i < n; i++) this.freeNext[i] = (i + 1) & this.mask;
    this.freeHead = 0;
    this.numFree = n;
    this.outstanding = 0;
    this.postedFront = 0;
    this.headChainLen.fill(0);
    this.tokens.fill(undefined);
    this.availIdx = 0;
    this.lastUsed = 0;
    this.kickOld = 0;
    this.broken = null;
  }

  /** Byte offset of descriptor `i` relative to the descriptor table (for callers that write `next` links for byte-compatibility). */
  static descOffset(i: number): number {
    return i * VIRTQ_DESC_SIZE;
  }

  /** Shadow (what we posted) of descriptor i. */
  postedAddr(i: number): number {
    return this.extraAddr[i]!;
  }
  postedLen(i: number): number {
    return this.extraLen[i]!;
  }

  /**
   * `next` is written only for chained descriptors: without NEXT the device
   * ignores it, and leaving it alone keeps our bytes identical to Linux's
   * and Zephyr's ivshmem-net TX (they keep their free-list links there).
   */
  private writeDesc(i: number, addr: number, len: number, flags: number, next: number): void {
    const d = this.desc;
    const b = i << 2;
    d[b] = addr >>> 0;
    d[b + 1] = Math.floor(addr / 4294967296) >>> 0;
    d[b + 2] = len >>> 0;
    this.desc16[(i << 3) + 6] = flags & 0xffff;
    if (flags & VIRTQ_DESC_F_NEXT) this.desc16[(i << 3) + 7] = next & 0xffff;
    this.extraAddr[i] = addr;
    this.extraLen[i] = len;
    this.extraFlags[i] = flags;
    this.extraNext[i] = next;
  }

  private checkSegment(addr: number, len: number): void {
    if (!Number.isSafeInteger(addr) || addr < 0 || !Number.isInteger(len) || len < 0 || len > 0xffffffff) {
      throw new InvalidArgumentError(`${this.name}: buffer ${addr}+${len} is not a valid address/length`);
    }
  }

  /**
   * Post one descriptor (flags as given, without NEXT). Returns the head
   * index, or -1 if no descriptor is free or the queue is broken. Not
   * visible to the device until publish().
   */
  addBuf(addr: number, len: number, flags = 0, token?: unknown): number {
    if (this.broken !== null || this.numFree === 0) return -1;
    const head = this.freeHead;
    this.freeHead = this.freeNext[head]!;
    this.numFree--;
    this.writeDesc(head, addr, len, flags & ~VIRTQ_DESC_F_NEXT, 0);
    this.headChainLen[head] = 1;
    this.tokens[head] = token;
    this.makeAvailable(head);
    return head;
  }

  /** Post a chain (device-readable segments first, then writable ones). Returns the head or -1. */
  addChain(segments: readonly DriverSegment[], token?: unknown): number {
    const count = segments.length;
    if (count === 0 || count > this.num) {
      throw new InvalidArgumentError(`${this.name}: a chain needs 1..${this.num} segments, got ${count}`);
    }
    let seenWrite = false;
    for (const s of segments) {
      this.checkSegment(s.addr, s.len);
      if (s.write) seenWrite = true;
      else if (seenWrite) throw new InvalidArgumentError(`${this.name}: device-readable segments must come before writable ones`);
    }
    if (this.broken !== null || this.numFree < count) return -1;
    const head = this.freeHead;
    let i = head;
    for (let k = 0; k < count; k++) {
      const s = segments[k]!;
      const next = this.freeNext[i]!;
      const last = k === count - 1;
      this.writeDesc(i, s.addr, s.len, (s.write ? 2 : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), last ? 0 : next);
      if (!last) i = next;
      else this.freeHead = next;
    }
    this.numFree -= count;
    this.headChainLen[head] = count;
    this.tokens[head] = token;
    this.makeAvailable(head);
    return head;
  }

  private makeAvailable(head: number): void {
    this.avail[2 + (this.availIdx & this.mask)] = head;
    this.posted[(this.postedFront + this.outstanding) & this.mask] = head;
    this.outstanding++;
    this.availIdx = (this.availIdx + 1) & 0xffff;
  }

  /** Store-release avail.idx: everything added so far becomes visible to the device. */
  publish(): void {
    Atomics.store(this.avail, 1, this.availIdx);
  }

  /**
   * Whether the device asked to be notified about what was published since
   * the last call (vring_need_event on avail_event, or !VIRTQ_USED_F_NO_NOTIFY).
   */
  needsNotify(): boolean {
    const newIdx = this.availIdx;
    const oldIdx = this.kickOld;
    this.kickOld = newIdx;
    if (newIdx === oldIdx) return false;
    if (this.eventIdx) return vringNeedEvent(Atomics.load(this.availEvent, 0), newIdx, oldIdx);
    return (Atomics.load(this.usedHdr, 0) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** Used elements the device has published and we have not consumed (0 if broken or if the index is invalid: that latches). */
  pendingUsed(): number {
    if (this.broken !== null) return 0;
    const pending = (Atomics.load(this.usedHdr, 1) - this.lastUsed) & 0xffff;
    if (pending > this.outstanding) {
      this.violate('used-idx-jump', { usedIdx: (this.lastUsed + pending) & 0xffff, lastUsed: this.lastUsed, outstanding: this.outstanding });
      return 0;
    }
    return pending;
  }

  /**
   * Take the next used element: returns the head (and sets usedLen /
   * usedToken) or -1 when nothing is pending or the queue is broken.
   */
  getUsed(): number {
    if (this.pendingUsed() === 0) return -1;
    const slot = (this.lastUsed & this.mask) << 1;
    const id = this.usedElems[slot]!; // each field read exactly once
    const len = this.usedElems[slot + 1]!;
    if (id >= this.num) return this.violate('used-id-range', { id, lastUsed: this.lastUsed });
    const chain = this.headChainLen[id]!;
    if (chain === 0) return this.violate('used-id-not-head', { id, lastUsed: this.lastUsed });
    if (this.inOrder && id !== this.posted[this.postedFront]) {
      return this.violate('used-out-of-order', { id, expected: this.posted[this.postedFront], lastUsed: this.lastUsed });
    }
    if (this.expectUsedLen !== undefined && len !== this.expectUsedLen) return this.violate('used-len', { id, len, expected: this.expectUsedLen });
    if (!this.inOrder) this.removePosted(id);
    else this.postedFront = (this.postedFront + 1) & this.mask;
    this.outstanding--;
    // Free the chain from shadow links only.
    let i = id;
    for (let k = 1; k < chain; k++) i = this.extraNext[i]!;
    this.freeNext[i] = this.freeHead;
    this.freeHead = id;
    this.numFree += chain;
    this.headChainLen[id] = 0;
    this.usedLen = len;
    this.usedToken = this.tokens[id];
    this.tokens[id] = undefined;
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    return id;
  }

  /** Out-of-order completion: drop `id` from the posted FIFO (O(outstanding), bounded by num). */
  private removePosted(id: number): void {
    const n = this.outstanding;
    let k = 0;
    while (k < n && this.posted[(this.postedFront + k) & this.mask] !== id) k++;
    for (; k > 0; k--) this.posted[(this.postedFront + k) & this.mask] = this.posted[(this.postedFront + k - 1) & this.mask]!;
    this.postedFront = (this.postedFront + 1) & this.mask;
  }

  /**
   * Ask for an interrupt when the device uses the next buffer: used_event =
   * lastUsed (EVENT_IDX), or clear VIRTQ_AVAIL_F_NO_INTERRUPT. Returns true
   * if something is already pending (the caller must poll again: race).
   */
  enableCallback(): boolean {
    if (this.eventIdx) Atomics.store(this.avail, 2 + this.num, this.lastUsed);
    else Atomics.store(this.avail, 0, Atomics.load(this.avail, 0) & ~VIRTQ_AVAIL_F_NO_INTERRUPT);
    return this.pendingUsed() > 0;
  }

  /** Suppress interrupts (only meaningful without EVENT_IDX; with it the stale used_event does the job). */
  disableCallback(): void {
    if (!this.eventIdx) Atomics.store(this.avail, 0, Atomics.load(this.avail, 0) | VIRTQ_AVAIL_F_NO_INTERRUPT);
  }

  /** used_event as we wrote it (for tests and register dumps). */
  get usedEvent(): number {
    return this.avail[2 + this.num]!;
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
