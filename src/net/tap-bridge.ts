// Bridge an ivshmem-net endpoint to a Linux TAP device: frames read from the
// TAP go to the link, frames from the link are written to the TAP, and the
// TAP's carrier follows the link's carrier (ivshmem-v2-notes.md b.4: carrier
// on iff both sides RUN), so `ip link` shows the truth.
//
// Performance notes (issue 4): the TAP fd is non-blocking and drained in
// batches from one readiness callback; frames land in a preallocated arena
// (no allocation per frame besides a view), and a batch goes to the link in
// one sendBatch() so the peer is rung at most once per batch. Received frames
// are taken as 'frame-view' (lent in place) and written to the TAP straight
// from shared memory: the write() is the only copy. When the link
// pushes back, TAP reading pauses (the kernel queues, then TCP slows down)
// instead of dropping, and resumes on 'writable'.
import { EventEmitter } from 'node:events';
import { IvshmError, NotSupportedError, OsError } from '../errors.js';
import { EBADFD, ETH_HLEN, openTap, type TapDevice, type TapOptions } from '../sys/tap.js';
import type { Watch } from '../sys/poll.js';

/** What the bridge needs from a link endpoint (src/net/endpoint.ts NetEndpoint satisfies it). */
export interface BridgeLink {
  readonly carrier: boolean;
  readonly mtu: number;
  up(): void;
  down(): void;
  /** Copy one frame into the link; false = no room now ('writable' follows). */
  send(frame: Uint8Array): boolean;
  /** Copy frames in order; returns how many were taken. */
  sendBatch?(frames: Uint8Array[]): number;
  counters(): object;
  /** Received frames, lent: valid until the callback returns (the bridge writes them to the TAP at once). */
  on(ev: 'frame-view', cb: (frame: Buffer) => void): unknown;
  on(ev: 'carrier', cb: (on: boolean) => void): unknown;
  on(ev: 'writable', cb: () => void): unknown;
  off(ev: 'frame-view', cb: (frame: Buffer) => void): unknown;
  off(ev: 'carrier', cb: (on: boolean) => void): unknown;
  off(ev: 'writable', cb: () => void): unknown;
}

/** Cumulative counters of a TAP bridge (frames each way, drops). */
export interface TapBridgeCounters {
  /** Frames read from the TAP and handed to the link. */
  tapRxFrames: number;
  tapRxBytes: number;
  /** Frames from the link written to the TAP. */
  tapTxFrames: number;
  tapTxBytes: number;
  /** TAP frames dropped: longer than the link MTU allows. */
  dropOversize: number;
  /** TAP frames dropped: shorter than an Ethernet header. */
  dropRunt: number;
  /** TAP frames dropped while the link had no carrier. */
  dropNoCarrier: number;
  /** Writes to the TAP that failed (errno other than a vanished TAP). */
  tapWriteErrors: number;
  /** Times reading paused because the link pushed back. */
  backpressurePauses: number;
  /** TAP readiness callbacks (batches). */
  tapReadBatches: number;
  carrierChanges: number;
}

export interface TapBridgeEvents {
  /** Something worth one log line (rate-limited by the bridge). */
  log: [{ level: 'info' | 'warn'; message: string }];
  carrier: [boolean];
  /** The TAP went away (deleted under us); the bridge has stopped. */
  'tap-gone': [IvshmError];
  close: [];
}

/** Options of a TAP bridge. */
export interface TapBridgeOptions {
  /** Frames drained from the TAP per readiness callback (default 64). */
  batch?: number;
  /** Close the TAP when the bridge closes (default true when the bridge opened it). */
  ownTap?: boolean;
}

const BATCH_DEFAULT = 64;
const VLAN_HLEN = 4;

/** Bridges an ivshmem-net endpoint to a TAP device, so a cell's kernel sees a real network interface. */
export class TapBridge extends EventEmitter<TapBridgeEvents> {
  readonly tap: TapDevice;
  readonly link: BridgeLink;
  private readonly stats: TapBridgeCounters = {
    tapRxFrames: 0, tapRxBytes: 0, tapTxFrames: 0, tapTxBytes: 0, dropOversize: 0, dropRunt: 0,
    dropNoCarrier: 0, tapWriteErrors: 0, backpressurePauses: 0, tapReadBatches: 0, carrierChanges: 0,
  };
  private readonly batch: number;
  private readonly ownTap: boolean;
  private readonly slot: number;
  private readonly arena: Buffer;
  /** One fixed view per arena slot, made once (no allocation per read). */
  private readonly slots: Buffer[] = [];
  private readonly views: Buffer[] = [];
  private watch: Watch | null = null;
  /** Frames read but not yet taken by the link (back-pressure), oldest first. */
  private pending: Buffer[] = [];
  private closed = false;
  private lastWarn = new Map<string, number>();
  private readonly onFrame = (f: Buffer) => this.toTap(f);
  private readonly onCarrier = (on: boolean) => this.applyCarrier(on);
  private readonly onWritable = () => this.resume();
  private drainScheduled = false;
  /**
   * After frames were written to the TAP, read it once more right away: the
   * kernel answers a ping or ACKs a TCP segment inside the write() call, so the
   * reply is usually queued already; reading it now saves a trip through epoll.
   */
  private readonly drainAfterWrite = () => {
    this.drainScheduled = false;
    if (this.watch && !this.closed) this.fromTap(false);
  };

  constructor(link: BridgeLink, tap: TapDevice, opts: TapBridgeOptions = {}) {
    super();
    if (tap.vnetHdrLen !== 0) {
      // ivshmem-net carries plain Ethernet frames (c.4): no virtio_net_hdr on the wire.
      throw new NotSupportedError(`TAP ${tap.name} was opened with IFF_VNET_HDR; the bridge needs plain frames`);
    }
    this.link = link;
    this.tap = tap;
    this.batch = Math.max(1, opts.batch ?? BATCH_DEFAULT);
    this.ownTap = opts.ownTap ?? false;
    // One slot per frame of a batch, big enough for any TAP read (the TAP's
    // MTU may be raised under us: such frames must be seen whole to be
    // rejected, never truncated into something else).
    this.slot = tap.vnetHdrLen + 65536 + ETH_HLEN + VLAN_HLEN;
    this.arena = Buffer.allocUnsafe(this.slot * this.batch);
    for (let i = 0; i < this.batch; i++) this.slots.push(this.arena.subarray(i * this.slot, (i + 1) * this.slot));
    link.on('frame-view', this.onFrame);
    link.on('carrier', this.onCarrier);
    link.on('writable', this.onWritable);
    this.applyCarrier(link.carrier, true);
    this.startReading();
  }

  /** Open a TAP as `tapOpts` says and bridge it to `link`; the TAP is closed with the bridge. */
  static open(link: BridgeLink, tapOpts: TapOptions & { address?: string | string[] }, opts: TapBridgeOptions = {}): TapBridge {
    const tap = openTap({ mtu: link.mtu, ...tapOpts, carrier: false });
    try {
      const addrs = tapOpts.address === undefined ? [] : Array.isArray(tapOpts.address) ? tapOpts.address : [tapOpts.address];
      for (const a of addrs) tap.addAddress(a);
      return new TapBridge(link, tap, { ownTap: true, ...opts });
    } catch (err) {
      tap.close();
      throw err;
    }
  }

  counters(): TapBridgeCounters {
    return { ...this.stats };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private warn(key: string, message: string): void {
    // One line per kind per 5 s: a flood of bad frames must not flood the log.
    const now = Date.now();
    if ((this.lastWarn.get(key) ?? 0) + 5000 > now) return;
    this.lastWarn.set(key, now);
    this.emit('log', { level: 'warn', message });
  }

  private applyCarrier(on: boolean, initial = false): void {
    if (this.closed) return;
    try {
      this.tap.setCarrier(on);
    } catch (err) {
      this.tapGone(err);
      return;
    }
    if (!initial) this.stats.carrierChanges++;
    // Frames held for a link that lost its carrier are stale: drop them and
    // read again (the TAP is drained and dropped-while-down from here on).
    if (!this.watch && !initial) this.resume();
    this.emit('carrier', on);
  }

  private startReading(): void {
    if (this.watch || this.closed) return;
    this.watch = this.tap.watch((hangup) => this.fromTap(hangup));
  }

  private pause(): void {
    this.stats.backpressurePauses++;
    this.watch?.close();
    this.watch = null;
  }

  private resume(): void {
    if (this.closed) return;
    if (!this.flushPending()) return;
    this.startReading();
  }

  /** Offer pending frames to the link; true when all were taken. */
  private flushPending(): boolean {
    if (this.pending.length === 0) return true;
    if (!this.link.carrier) {
      this.stats.dropNoCarrier += this.pending.length;
      this.pending = [];
      return true;
    }
    const taken = this.sendFrames(this.pending);
    this.pending = taken >= this.pending.length ? [] : this.pending.slice(taken);
    return this.pending.length === 0;
  }

  private sendFrames(frames: Buffer[]): number {
    if (this.link.sendBatch) return this.link.sendBatch(frames);
    let i = 0;
    while (i < frames.length && this.link.send(frames[i]!)) i++;
    return i;
  }

  /** Drain up to one batch of frames from the TAP and hand them to the link. */
  private fromTap(hangup: boolean): void {
    if (this.closed) return;
    this.stats.tapReadBatches++; // includes drains after writes that found nothing
    const maxFrame = this.link.mtu + ETH_HLEN + VLAN_HLEN + this.tap.vnetHdrLen;
    const carrier = this.link.carrier;
    const frames = this.views;
    frames.length = 0;
    for (let i = 0; i < this.batch; i++) {
      const into = this.slots[i]!;
      const n = this.tap.read(into);
      if (n === 0) break;
      if (n < 0) {
        if (-n === EBADFD || hangup) {
          this.tapGone(new OsError('read', -n, `TAP ${this.tap.name} vanished (deleted under the bridge)`));
          return;
        }
        this.warn('read', `read from TAP ${this.tap.name} failed: errno ${-n}`);
        break;
      }
      if (n > maxFrame) {
        this.stats.dropOversize++;
        this.warn('oversize', `dropped a ${n}-byte frame from TAP ${this.tap.name}: larger than the link MTU ${this.link.mtu} allows ` +
          `(was the TAP MTU raised? ip link set ${this.tap.name} mtu ${this.link.mtu})`);
        continue;
      }
      if (n < ETH_HLEN + this.tap.vnetHdrLen) {
        this.stats.dropRunt++;
        continue;
      }
      if (!carrier) {
        this.stats.dropNoCarrier++;
        continue;
      }
      this.stats.tapRxFrames++;
      this.stats.tapRxBytes += n;
      frames.push(into.subarray(0, n));
    }
    if (frames.length === 0) return;
    const taken = this.sendFrames(frames);
    if (taken < frames.length) {
      // Keep the rest (copied: the arena is reused) and stop reading until
      // the link says 'writable'.
      for (let i = taken; i < frames.length; i++) this.pending.push(Buffer.from(frames[i]!));
      this.pause();
    }
  }

  private toTap(frame: Buffer): void {
    if (this.closed) return;
    const e = this.tap.write(frame);
    if (e === 0) {
      this.stats.tapTxFrames++;
      this.stats.tapTxBytes += frame.byteLength;
      if (!this.drainScheduled) {
        this.drainScheduled = true;
        queueMicrotask(this.drainAfterWrite);
      }
      return;
    }
    if (e === EBADFD) {
      this.tapGone(new OsError('write', e, `TAP ${this.tap.name} vanished (deleted under the bridge)`));
      return;
    }
    this.stats.tapWriteErrors++;
    this.warn('write', `write of a ${frame.byteLength}-byte frame to TAP ${this.tap.name} failed: errno ${e}`);
  }

  private tapGone(err: unknown): void {
    if (this.closed) return;
    const e = err instanceof IvshmError ? err : new OsError('tap', EBADFD, `TAP ${this.tap.name}: ${String(err)}`);
    this.emit('log', { level: 'warn', message: `${e.message}; stopping the bridge` });
    this.close();
    this.emit('tap-gone', e);
  }

  /** Stop moving frames; closes the TAP if the bridge owns it. Does not close the link. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    this.watch = null;
    this.pending = [];
    this.link.off('frame-view', this.onFrame);
    this.link.off('carrier', this.onCarrier);
    this.link.off('writable', this.onWritable);
    if (this.ownTap) this.tap.close();
    else {
      try {
        this.tap.setCarrier(false);
      } catch { /* gone */ }
    }
    this.emit('close');
  }
}
