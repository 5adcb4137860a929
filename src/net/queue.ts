// The ivshmem-net queue pair (ivshmem-v2-notes.md c.3-c.6): one split ring
// per direction, each formatted by its sender in its own output section,
// with the two used rings swapped so that every byte a peer writes lies in
// its own section:
//
//   own section:  TX descriptors | TX avail + used_event | RX used + avail_event | TX frame FIFO
//   peer section: RX descriptors | RX avail + used_event | TX used + avail_event | RX frames
//
// TX is a VirtqDriver (desc/avail here, used ring in the peer section); RX is
// a VirtqDevice (desc/avail in the peer section, used ring here). Frames go
// into a byte FIFO of slots round_up(18 + len, 64) that wraps to offset 0
// when the tail end is too short (the skipped bytes count as used until the
// frame is completed). Completions carry len 1 and must come back in order;
// the slot accounting is driven by our shadow of what we posted, never by
// descriptor bytes read back.
import { InvalidArgumentError } from '../errors.js';
import { VirtqDevice } from '../virtio/device.js';
import { VirtqDriver } from '../virtio/driver.js';
import { bump, type ViolationCounters, type ViolationInfo, type ViolationSink } from '../virtio/violation.js';
import { ETH_HLEN, IVSHM_NET_FRAME_OVERHEAD, IVSHM_NET_USED_LEN, ivshmNetFrameSize, type NetSizing } from './sizing.js';

/** ivshmem-net reasons on top of the virtqueue ones. */
export const IVSHM_NET_VIOLATIONS = {
  'rx-desc-addr': 'an RX descriptor points outside the peer data area (into the ring header or past the section)',
  'rx-desc-len': 'an RX descriptor length runs past the end of the peer section',
  'rx-frame-short': 'an RX frame is shorter than an Ethernet header (14 bytes)',
  'rx-frame-long': 'an RX frame is longer than MTU + 18',
  'tx-fifo-accounting': 'a TX completion does not match the frame FIFO tail',
  'peer-state': 'the peer wrote a state value outside RESET/INIT/READY/RUN',
  'peer-section-size': 'the peer output section is smaller than ours',
} as const;
export type IvshmNetViolation = keyof typeof IVSHM_NET_VIOLATIONS;

const SLAB_BYTES = 256 * 1024;

export interface NetQueueHooks {
  /** Tests only: called after an RX descriptor was snapshotted and validated, before the copy. */
  afterRxSnapshot?(addr: number, len: number): void;
}

export class IvshmNetQueue {
  readonly sizing: NetSizing;
  readonly own: Buffer;
  private readonly descU16: Uint16Array;
  private peer: Uint8Array | null = null;
  tx: VirtqDriver | null = null;
  rx: VirtqDevice | null = null;
  /** MTU used for the RX length check and the TX headroom rule. */
  mtu: number;
  /** Net-level violation latched (virtqueue-level ones latch in tx/rx). */
  private netBroken: IvshmNetViolation | null = null;
  readonly violations: ViolationCounters = {};
  onViolation: ViolationSink | undefined;
  hooks: NetQueueHooks | undefined;
  /** Called when the peer asked for a completion doorbell in the middle of a receive batch. */
  ringPeer: (() => void) | undefined;

  // Private RX copies are carved from a slab (one allocation per 256 KiB
  // instead of one ArrayBuffer per large frame); a slice keeps only its slab alive.
  private slab: Buffer = Buffer.alloc(0);
  private slabOff = 0;

  // Frame FIFO (offsets relative to the data area).
  head = 0;
  tail = 0;
  /** Bytes in use, including tails skipped at a wrap (disambiguates head == tail). */
  used = 0;

  constructor(sizing: NetSizing, own: Buffer, mtu: number) {
    if (own.byteLength < sizing.sectionSize) {
      throw new InvalidArgumentError(`ivshmem-net: own output section has ${own.byteLength} bytes, expected ${sizing.sectionSize}`);
    }
    this.sizing = sizing;
    this.own = own;
    this.mtu = mtu;
    this.descU16 = new Uint16Array(own.buffer, own.byteOffset + sizing.ring.desc, sizing.num * 8);
  }

  get broken(): string | null {
    return this.netBroken ?? this.tx?.broken ?? this.rx?.broken ?? null;
  }

  get attached(): boolean {
    return this.peer !== null;
  }

  /**
   * INIT -> READY (b.4): zero our whole output section and lay out the TX
   * ring as Linux and Zephyr do (desc[i].next = i + 1 for i < N - 1).
   */
  format(): void {
    this.detach();
    this.own.fill(0, 0, this.sizing.sectionSize);
    const n = this.sizing.num;
    for (let i = 0; i < n - 1; i++) this.descU16[i * 8 + 7] = i + 1;
    this.head = this.tail = this.used = 0;
    this.netBroken = null;
  }

  /** Start using the peer's section: only once the peer reported READY or RUN (it formatted it). */
  attach(peer: Uint8Array): void {
    const s = this.sizing;
    if (peer.byteLength < s.sectionSize) {
      this.violate('peer-section-size', { peerBytes: peer.byteLength, expected: s.sectionSize });
      return;
    }
    this.peer = peer;
    const sink = (v: ViolationInfo) => this.forward(v);
    this.tx = new VirtqDriver({
      num: s.num,
      driverSection: this.own,
      descOffset: s.ring.desc,
      availOffset: s.ring.avail,
      deviceSection: peer,
      usedOffset: s.ring.used,
      eventIdx: true,
      inOrder: true,
      expectUsedLen: IVSHM_NET_USED_LEN,
      onViolation: sink,
      name: 'ivshmem-net TX',
    });
    this.rx = new VirtqDevice({
      num: s.num,
      driverSection: peer,
      descOffset: s.ring.desc,
      availOffset: s.ring.avail,
      deviceSection: this.own,
      usedOffset: s.ring.used,
      eventIdx: true,
      singleDescriptor: true,
      onViolation: sink,
      name: 'ivshmem-net RX',
    });
  }

  /** Forget the peer section (it is gone or about to be re-formatted). Never touch it again. */
  detach(): void {
    this.peer = null;
    this.tx = null;
    this.rx = null;
  }

  private forward(v: ViolationInfo): void {
    bump(this.violations, v.reason);
    this.onViolation?.(v);
  }

  private violate(reason: IvshmNetViolation, detail: Record<string, unknown>): void {
    if (this.broken !== null) return;
    this.netBroken = reason;
    this.forward({ reason, message: `ivshmem-net: ${IVSHM_NET_VIOLATIONS[reason]}`, ...detail });
  }

  // ---------------------------------------------------------------- TX

  /** Free TX descriptors. */
  get txFreeDescriptors(): number {
    return this.tx?.numFree ?? 0;
  }

  /**
   * Largest contiguous slot the FIFO can give now (NET ivshm_net_tx_space,
   * with `used` telling a full FIFO from an empty one when head == tail).
   */
  txSpace(): number {
    const Q = this.sizing.dataSize;
    if (this.used >= Q) return 0;
    if (this.head < this.tail) return this.tail - this.head;
    return Math.max(Q - this.head, this.tail);
  }

  /** Linux's headroom rule: at least 2 descriptors and 2 max-MTU slots (c.4 steps 1 and 4). */
  txOk(): boolean {
    return this.txFreeDescriptors >= 2 && this.txSpace() >= 2 * ivshmNetFrameSize(this.mtu);
  }

  /**
   * Put one frame into the FIFO and the avail ring (not yet published).
   * Exact capacity (Zephyr semantics): false when no descriptor is free or
   * the slot (plus any skipped tail) does not fit. The caller checks the
   * frame length.
   */
  enqueue(frame: Uint8Array): boolean {
    const tx = this.tx;
    if (tx === null || tx.broken !== null || this.netBroken !== null || tx.numFree === 0) return false;
    const len = frame.byteLength;
    const Q = this.sizing.dataSize;
    const slot = ivshmNetFrameSize(len);
    let pos = this.head;
    let consumed = slot;
    if (slot > Q - pos) {
      consumed += Q - pos; // the tail end is skipped (c.4 step 3)
      pos = 0;
    }
    if (consumed > Q - this.used) return false;
    const addr = this.sizing.dataOffset + pos;
    this.own.set(frame, addr);
    tx.addBuf(addr, len, 0);
    this.head = pos + slot;
    this.used += consumed;
    return true;
  }

  publish(): void {
    this.tx?.publish();
  }

  /** Whether the peer asked for a doorbell for what was published since the last call. */
  txNeedsNotify(): boolean {
    return this.tx?.needsNotify() ?? false;
  }

  /** Reclaim completed TX slots (c.5). Returns how many; stops at the first violation. */
  reclaim(): number {
    const tx = this.tx;
    if (tx === null || this.netBroken !== null) return 0;
    const Q = this.sizing.dataSize;
    let n = 0;
    for (;;) {
      const id = tx.getUsed();
      if (id < 0) break;
      const len = tx.postedLen(id);
      const slot = ivshmNetFrameSize(len);
      let pos = this.tail;
      let consumed = slot;
      if (slot > Q - pos) {
        consumed += Q - pos;
        pos = 0;
      }
      // In-order completions make this hold by construction; checking it
      // keeps a bug here from silently corrupting the FIFO.
      if (this.sizing.dataOffset + pos !== tx.postedAddr(id) || consumed > this.used) {
        this.violate('tx-fifo-accounting', { id, tail: this.tail, used: this.used });
        break;
      }
      this.tail = pos + slot;
      this.used -= consumed;
      n++;
    }
    // Empty again: start over at offset 0. Linux keeps head/tail where they
    // were, and with an MTU above ~Q/4.5 its 2-slot headroom rule can then
    // never be met (max(Q - head, tail) < 2 slots with nothing in flight).
    if (this.used === 0) this.head = this.tail = 0;
    return n;
  }

  /** Ask the peer for a completion interrupt (used_event = last used). True if completions are already pending. */
  requestTxInterrupt(): boolean {
    return this.tx?.enableCallback() ?? false;
  }

  // ---------------------------------------------------------------- RX

  /** Frames the peer has published that we have not taken (0 when broken). */
  rxPending(): number {
    return this.rx?.pendingAvail() ?? 0;
  }

  /**
   * Take up to `budget` frames (c.6): snapshot each descriptor once,
   * validate it, copy the bytes out into a private Buffer, complete with
   * len 1. `out` receives the copies. Publishes used.idx once at the end.
   */
  receive(budget: number, out: Buffer[]): number {
    return this.take(budget, (peer, addr, len) => out.push(this.privateCopy(peer, addr, len)));
  }

  /**
   * Like receive(), but lends each frame in place: `visit` gets a view of the
   * peer's section (read-only: the mapping is PROT_READ) that is valid only
   * during the call, and the descriptor is completed after it returns, so an
   * honest peer does not reuse the slot while we read it. For a consumer that copies
   * anyway (a TAP write): it saves the private copy and its allocation. The
   * peer can still change the bytes under us; they are its own frame's bytes,
   * and nothing here parses them (the descriptor was validated).
   */
  receiveInPlace(budget: number, visit: (frame: Buffer) => void): number {
    return this.take(budget, (peer, addr, len) => {
      try {
        visit(Buffer.from(peer.buffer, peer.byteOffset + addr, len));
      } catch (err) {
        // A throwing consumer must not leave the descriptor unfinished; report it the Node way.
        queueMicrotask(() => {
          throw err;
        });
      }
    });
  }

  private take(budget: number, consume: (peer: Uint8Array, addr: number, len: number) => void): number {
    const rx = this.rx;
    const peer = this.peer;
    if (rx === null || peer === null || this.netBroken !== null) return 0;
    const H = this.sizing.dataOffset;
    const L = this.sizing.sectionSize;
    const maxLen = this.mtu + IVSHM_NET_FRAME_OVERHEAD;
    let n = 0;
    while (n < budget) {
      const head = rx.pop();
      if (head < 0) break;
      const addr = rx.chainAddr[0]!; // snapshots taken by pop(), read once
      const len = rx.chainLen[0]!;
      if (addr < H || addr >= L) {
        this.violate('rx-desc-addr', { head, addr, dataOffset: H, sectionSize: L });
        break;
      }
      if (len > L - addr) {
        this.violate('rx-desc-len', { head, addr, len, sectionSize: L });
        break;
      }
      if (len < ETH_HLEN) {
        this.violate('rx-frame-short', { head, len });
        break;
      }
      if (len > maxLen) {
        this.violate('rx-frame-long', { head, len, mtu: this.mtu });
        break;
      }
      this.hooks?.afterRxSnapshot?.(addr, len);
      consume(peer, addr, len);
      // The consumer may have closed or reset the endpoint (in-place mode runs user code here).
      if (this.rx !== rx) break;
      rx.push(head, IVSHM_NET_USED_LEN);
      n++;
      // Hand slots back during a long batch so the sender can refill while we copy.
      if ((n & 15) === 0) {
        rx.publishUsed();
        if (this.ringPeer !== undefined && rx.needsNotify()) this.ringPeer();
        if (this.rx !== rx) break;
      }
    }
    // A violation above may have detached us (and, if writing RESET lost the
    // broker, unmapped our section): publish only while still attached.
    if (n > 0 && this.rx === rx) rx.publishUsed();
    return n;
  }

  private privateCopy(peer: Uint8Array, addr: number, len: number): Buffer {
    let buf: Buffer;
    if (len > SLAB_BYTES / 8) buf = Buffer.allocUnsafeSlow(len);
    else {
      if (this.slabOff + len > this.slab.byteLength) {
        this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        this.slabOff = 0;
      }
      buf = this.slab.subarray(this.slabOff, this.slabOff + len);
      this.slabOff = (this.slabOff + len + 7) & ~7;
    }
    buf.set(peer.subarray(addr, addr + len));
    return buf;
  }

  /** Whether the peer asked for a doorbell for the completions published since the last call. */
  rxNeedsNotify(): boolean {
    return this.rx?.needsNotify() ?? false;
  }

  /** avail_event = last avail (ask for the next frame). True if frames are already pending. */
  enableRxNotify(): boolean {
    return this.rx?.enableNotify() ?? false;
  }

  /** Register dump (c.7 ethtool regs). */
  regs(): Record<string, number> {
    return {
      num: this.sizing.num,
      txAvailIdx: this.tx?.availIdx ?? 0,
      txLastUsed: this.tx?.lastUsed ?? 0,
      txUsedEvent: this.tx?.usedEvent ?? 0,
      txFree: this.txFreeDescriptors,
      fifoHead: this.head,
      fifoTail: this.tail,
      fifoUsed: this.used,
      fifoSpace: this.txSpace(),
      rxLastAvail: this.rx?.lastAvail ?? 0,
      rxUsedIdx: this.rx?.usedIdx ?? 0,
      rxAvailEvent: this.rx?.availEventValue ?? 0,
    };
  }
}
