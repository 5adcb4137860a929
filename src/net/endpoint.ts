// An ivshmem-net endpoint (protocol 0x0001) on a connected ivshmem device:
// probe checks (ivshmem-v2-notes.md c.1), the RESET/INIT/READY/RUN state
// machine (b.4), carrier, MTU rules (c.8), the data path with event-index
// suppression (c.4-c.7) and the three wait modes (DESIGN.md "Performance
// model").
//
// State machine, as Jailhouse's Linux driver (ivshm_net_state_change):
//   RESET      peer < READY       -> INIT
//   INIT       peer > RESET       -> zero + format own section, READY
//   READY/RUN  peer >= READY      -> "run": if up, RUN; carrier iff peer RUN
//   READY/RUN  peer == RESET      -> "stop": RESET, carrier off
//   READY/RUN  peer == INIT       -> wait
// One difference, on purpose: Linux skips an evaluation when the peer value
// equals the cached one. Every transition above depends only on the current
// pair of values, so we evaluate on every state interrupt; the skip can
// deadlock (we drop to RESET while the peer sits in INIT: neither value
// changes again). A peer that leaves the link ('peer-gone') is treated as
// RESET at once, whatever the coalesced table value says, so a restarted
// peer never sees our stale rings and we never read its unmapped section.
import { EventEmitter } from 'node:events';
import { ClosedError, ConfigError, InvalidArgumentError } from '../errors.js';
import { PEER_OUTPUT_VIEW, type IvshmemEndpoint, type InterruptEvent } from '../ivshmem/endpoint.js';
import type { ViolationInfo } from '../virtio/violation.js';
import { newNetCounters, type NetCounters } from './counters.js';
import { IVSHM_NET_VIOLATIONS, IvshmNetQueue } from './queue.js';
import { ETH_HLEN, IVSHM_NET_FRAME_OVERHEAD, IVSHM_NET_PROTOCOL, ivshmNetSizing, type NetSizing } from './sizing.js';

/** ivshmem-net state RESET (docs/spec-net.md §9). */
export const IVSHM_NET_STATE_RESET = 0;
/** ivshmem-net state INIT: queues initialised (docs/spec-net.md §9). */
export const IVSHM_NET_STATE_INIT = 1;
/** ivshmem-net state READY: ready to run once the peer is (docs/spec-net.md §9). */
export const IVSHM_NET_STATE_READY = 2;
/** ivshmem-net state RUN: frames flow (docs/spec-net.md §9). */
export const IVSHM_NET_STATE_RUN = 3;
/** Cached peer state before the first evaluation (Linux: ~0). */
export const IVSHM_NET_STATE_UNKNOWN = -1;

export const IVSHM_NET_STATE_NAMES = ['RESET', 'INIT', 'READY', 'RUN'] as const;

/** State vector (0) and data vector (1) with 2 vectors; vector 0 for both with 1 (c.1). */
export const IVSHM_NET_VECTOR_STATE = 0;
export const IVSHM_NET_VECTOR_TX_RX = 1;

export type WaitMode = 'event' | 'poll' | 'hybrid';

/** MTU, receive path and wait mode of an ivshmem-net endpoint. */
export interface NetOptions {
  mtu?: number;
  wait?: WaitMode;
  /** Frames taken per poll round before yielding to the event loop (default: the ring size, at most 256). */
  budget?: number;
  /** hybrid: spin this long after the last activity before sleeping on the doorbell (default 50 µs). */
  spinMicros?: number;
  /** frames(): stop taking RX frames while this many are queued for the iterator (default 4 × ring size). */
  iteratorHighWater?: number;
}

/** A change of this side's or the peer's ivshmem-net state. */
export interface NetStateEvent {
  local: number;
  peer: number;
}

/** A peer's violation of the ivshmem-net ring protocol: reason code and detail. */
export interface NetViolation extends ViolationInfo {
  readonly reason: string;
  readonly message: string;
}

export interface NetEndpointEvents {
  /** A received frame: a private copy, yours to keep. */
  frame: [Buffer];
  /**
   * A received frame lent in place: a view of the peer's (read-only) section,
   * valid only until the listener returns. Copy what you keep. With only
   * 'frame-view' listeners the endpoint skips the private copy per frame (the
   * TAP bridge writes the view straight to the TAP).
   */
  'frame-view': [Buffer];
  carrier: [boolean];
  state: [NetStateEvent];
  writable: [];
  violation: [NetViolation];
  close: [];
}

/** An ivshmem-net (protocol 0x0001) endpoint: sends and receives Ethernet frames over a two-peer link, wire-compatible with Jailhouse's Linux driver and Zephyr's (docs/spec-net.md). */
export interface NetEndpoint extends EventEmitter<NetEndpointEvents> {
  readonly carrier: boolean;
  readonly mtu: number;
  readonly localState: number;
  readonly peerState: number;
  readonly sizing: NetSizing;
  readonly isUp: boolean;
  readonly closed: boolean;
  up(): void;
  down(): void;
  setMtu(n: number): void;
  send(frame: Uint8Array): boolean;
  sendBatch(frames: readonly Uint8Array[]): number;
  frames(): AsyncIterableIterator<Buffer>;
  counters(): NetCounters;
  /** Ring indices and FIFO positions (c.7 register dump), for diagnostics. */
  regs(): Record<string, number>;
  close(): void;
}

/** Probe (c.1, g.30) and open an ivshmem-net endpoint. Throws ConfigError naming what is wrong. */
export function openNet(dev: IvshmemEndpoint, opts: NetOptions = {}): NetEndpoint {
  return new IvshmNetEndpoint(dev, opts);
}

class IvshmNetEndpoint extends EventEmitter<NetEndpointEvents> implements NetEndpoint {
  readonly sizing: NetSizing;
  private readonly dev: IvshmemEndpoint;
  private readonly peerId: number;
  private readonly queue: IvshmNetQueue;
  private readonly stateVector: number;
  private readonly dataVector: number;
  private readonly wait: WaitMode;
  private readonly budget: number;
  private readonly spinNs: bigint;
  private readonly highWater: number;
  private readonly stats = newNetCounters();

  private _mtu: number;
  private _up = false;
  private _carrier = false;
  private _closed = false;
  private local = IVSHM_NET_STATE_RESET;
  private lastPeer = IVSHM_NET_STATE_UNKNOWN;
  private badPeerValue = -1;
  /** send() returned false; 'writable' is owed. */
  private paused = false;
  private kickScheduled = false;
  private pollScheduled = false;
  private spinning = false;
  private lastActivity = 0n;
  /** frames() iterators holding RX back (their queues are full). */
  private rxHeld = 0;
  private readonly batch: Buffer[] = [];
  private readonly devListeners: [string, (...a: never[]) => void][] = [];

  constructor(dev: IvshmemEndpoint, opts: NetOptions) {
    super();
    // Probe checks (c.1; g.30).
    const where = `ivshmem-net on link ${dev.name}`;
    if (dev.closed) throw new ClosedError(`${where}: the device is closed`);
    if (dev.protocol !== IVSHM_NET_PROTOCOL) {
      throw new ConfigError(`${where}: the link announces protocol 0x${dev.protocol.toString(16).padStart(4, '0')}, not ivshmem-net (0x0001); start the broker with --protocol 1`);
    }
    if (dev.maxPeers !== 2) throw new ConfigError(`${where}: ivshmem-net links have exactly 2 peers; this one has MAX_PEERS ${dev.maxPeers}`);
    if (dev.id > 1) throw new ConfigError(`${where}: peer ID ${dev.id} is not 0 or 1`);
    if (dev.vectors !== 1 && dev.vectors !== 2) {
      throw new ConfigError(`${where}: ivshmem-net needs 2 interrupt vectors (state, data) or 1 shared one; the link has ${dev.vectors}`);
    }
    this.sizing = ivshmNetSizing(dev.sizes.output);
    const mtu = opts.mtu ?? this.sizing.defaultMtu;
    this.checkMtu(mtu);
    this._mtu = mtu;
    this.dev = dev;
    this.peerId = 1 - dev.id;
    this.stateVector = IVSHM_NET_VECTOR_STATE;
    this.dataVector = dev.vectors === 2 ? IVSHM_NET_VECTOR_TX_RX : IVSHM_NET_VECTOR_STATE;
    this.wait = opts.wait ?? 'event';
    if (!['event', 'poll', 'hybrid'].includes(this.wait)) throw new InvalidArgumentError(`${where}: wait mode "${String(this.wait)}" is not event, poll or hybrid`);
    this.budget = opts.budget ?? Math.min(256, this.sizing.num);
    this.spinNs = BigInt(Math.round((opts.spinMicros ?? 50) * 1000));
    this.highWater = opts.iteratorHighWater ?? 4 * this.sizing.num;
    this.queue = new IvshmNetQueue(this.sizing, dev.output, mtu);
    this.queue.onViolation = (v) => this.onViolation(v);
    this.queue.ringPeer = () => {
      this.stats.rxNotify++;
      this.dev.ring(this.peerId, this.dataVector);
    };

    // A kernel driver sets Privileged Control 0 (no one-shot) and enables interrupts (c.1).
    dev.oneShot = false;
    dev.intControl = true;
    this.listen('interrupt', (e: InterruptEvent) => this.onInterrupt(e));
    this.listen('state', (e: { peer: number }) => {
      if (e.peer === this.peerId) this.evaluate();
    });
    this.listen('peer-gone', (e: { peer: number }) => {
      if (e.peer === this.peerId) this.onPeerGone();
    });
    this.listen('peer-joined', (e: { peer: number }) => {
      if (e.peer === this.peerId) this.evaluate();
    });
    this.listen('close', () => this.onDeviceClosed());

    // Probe: write RESET and kick one evaluation (b.4).
    this.setLocal(IVSHM_NET_STATE_RESET);
    this.evaluate();
  }

  private listen(ev: string, fn: (...a: never[]) => void): void {
    (this.dev as unknown as EventEmitter).on(ev, fn as (...a: unknown[]) => void);
    this.devListeners.push([ev, fn]);
  }

  // ------------------------------------------------------------ properties

  get carrier(): boolean {
    return this._carrier;
  }
  get mtu(): number {
    return this._mtu;
  }
  get localState(): number {
    return this.local;
  }
  get peerState(): number {
    return this.lastPeer < 0 ? IVSHM_NET_STATE_RESET : this.lastPeer;
  }
  get isUp(): boolean {
    return this._up;
  }
  get closed(): boolean {
    return this._closed;
  }

  private checkMtu(n: number): void {
    const s = this.sizing;
    if (!Number.isInteger(n) || n < s.minMtu || n > s.maxMtu) {
      throw new InvalidArgumentError(`MTU ${n} is outside ${s.minMtu}..${s.maxMtu} for a ${s.sectionSize}-byte output section (max = min(65535, data area / 4))`);
    }
  }

  /** c.8: only while the interface is down. */
  setMtu(n: number): void {
    if (this._closed) throw new ClosedError('ivshmem-net endpoint is closed');
    if (this._up) throw new ConfigError(`MTU can only change while the interface is down (call down() first); it is ${this._mtu}`);
    this.checkMtu(n);
    this._mtu = n;
    this.queue.mtu = n;
  }

  // ------------------------------------------------------------ state machine (b.4)

  private setLocal(s: number): void {
    if (s === IVSHM_NET_STATE_RESET && this.local >= IVSHM_NET_STATE_READY) this.stats.resets++;
    this.local = s;
    if (!this.dev.closed) this.dev.setState(s);
    this.emit('state', { local: s, peer: this.peerState });
  }

  /** Read the peer's table entry; values outside 0..3 count as a violation and as RESET. */
  private readPeer(): number {
    const v = this.dev.closed ? IVSHM_NET_STATE_RESET : this.dev.peerState(this.peerId);
    if (v > IVSHM_NET_STATE_RUN) {
      if (v !== this.badPeerValue) {
        this.badPeerValue = v;
        this.countViolation({ reason: 'peer-state', message: `ivshmem-net: ${IVSHM_NET_VIOLATIONS['peer-state']}`, value: v });
      }
      return IVSHM_NET_STATE_RESET;
    }
    this.badPeerValue = -1;
    return v;
  }

  private evaluate(): void {
    if (this._closed) return;
    // Bounded: each pass either changes local state along RESET->INIT->READY->RUN
    // or to RESET, or stops; four passes reach a fixed point.
    for (let pass = 0; pass < 4; pass++) {
      // A STATE write can lose the broker and close the device (unmapping our
      // section) synchronously: never format or read after that.
      if (this._closed) return;
      const peer = this.readPeer();
      const changedPeer = peer !== this.lastPeer;
      this.lastPeer = peer;
      const before = this.local;
      switch (this.local) {
        case IVSHM_NET_STATE_RESET:
          if (peer < IVSHM_NET_STATE_READY) this.setLocal(IVSHM_NET_STATE_INIT);
          break;
        case IVSHM_NET_STATE_INIT:
          if (peer > IVSHM_NET_STATE_RESET) {
            this.queue.format();
            this.setLocal(IVSHM_NET_STATE_READY);
          }
          break;
        default:
          if (peer >= IVSHM_NET_STATE_READY) this.run();
          else if (peer === IVSHM_NET_STATE_RESET) this.stop();
          break;
      }
      if (this.local === before) {
        if (changedPeer) this.emit('state', { local: this.local, peer });
        break;
      }
    }
    this.updateCarrier();
  }

  /** ivshm_net_run: effective once local >= READY and the interface is up. */
  private run(): void {
    if (this.local < IVSHM_NET_STATE_READY || !this._up || this._closed) return;
    // Touch the peer's section only after it reported READY/RUN (it formatted it).
    if (!this.queue.attached && this.lastPeer >= IVSHM_NET_STATE_READY) {
      const view = this.dev[PEER_OUTPUT_VIEW](this.peerId);
      if (view === null) return;
      this.queue.attach(view);
    }
    if (this.local !== IVSHM_NET_STATE_RUN) {
      this.setLocal(IVSHM_NET_STATE_RUN);
    }
    this.schedulePoll();
  }

  /** ivshm_net_do_stop: RESET, drop the rings, carrier off. */
  private stop(): void {
    this.queue.detach();
    this.spinning = false;
    if (this.local !== IVSHM_NET_STATE_RESET) this.setLocal(IVSHM_NET_STATE_RESET);
    this.updateCarrier();
  }

  private updateCarrier(): void {
    const on = !this._closed && this._up && this.local === IVSHM_NET_STATE_RUN && this.lastPeer === IVSHM_NET_STATE_RUN && this.queue.attached && this.queue.broken === null;
    if (on === this._carrier) return;
    this._carrier = on;
    if (on) this.stats.handshakes++;
    this.emit('carrier', on);
    if (on) {
      this.schedulePoll();
      if (this.paused) {
        this.paused = false;
        this.emit('writable');
      }
    }
  }

  private onPeerGone(): void {
    // The device has already unmapped the section: drop every view now.
    this.queue.detach();
    this.lastPeer = IVSHM_NET_STATE_RESET;
    if (this.local >= IVSHM_NET_STATE_READY) this.stop();
    this.evaluate();
  }

  private onDeviceClosed(): void {
    if (this._closed) return;
    this.queue.detach();
    this.teardown();
  }

  up(): void {
    if (this._closed) throw new ClosedError('ivshmem-net endpoint is closed');
    if (this._up) return;
    this._up = true;
    this.evaluate();
  }

  /** ifdown: RESET if the rings were set up, which forces the peer to re-handshake (b.4, g.22). */
  down(): void {
    if (this._closed) throw new ClosedError('ivshmem-net endpoint is closed');
    if (!this._up) return;
    this._up = false;
    if (this.local >= IVSHM_NET_STATE_READY) this.stop();
    this.updateCarrier();
  }

  // ------------------------------------------------------------ violations

  private countViolation(v: ViolationInfo): void {
    this.stats.violations[v.reason] = (this.stats.violations[v.reason] ?? 0) + 1;
    this.stats.violationsTotal++;
    this.emit('violation', v);
  }

  /** A queue latched broken: count, report, and recover by renegotiation (RESET). */
  private onViolation(v: ViolationInfo): void {
    this.countViolation(v);
    if (this.local >= IVSHM_NET_STATE_READY) this.stop();
  }

  // ------------------------------------------------------------ TX

  private checkFrame(frame: Uint8Array): void {
    if (!(frame instanceof Uint8Array)) throw new InvalidArgumentError('send(): a frame is a Uint8Array or Buffer');
    const max = this._mtu + IVSHM_NET_FRAME_OVERHEAD;
    if (frame.byteLength < ETH_HLEN || frame.byteLength > max) {
      throw new InvalidArgumentError(`send(): a ${frame.byteLength}-byte frame is outside ${ETH_HLEN}..${max} (MTU ${this._mtu} + 18)`);
    }
  }

  /** Room for one more frame under the headroom rule, reclaiming completions first (c.4 step 1). */
  private txRoom(): boolean {
    const q = this.queue;
    if (q.txOk()) return true;
    q.reclaim();
    return q.txOk();
  }

  /** Stop TX: ask for a completion interrupt and re-check (the completion may have raced). */
  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.stats.txPause++;
    }
    if (this.queue.requestTxInterrupt()) this.schedulePoll();
    else if (this.wait !== 'event') this.schedulePoll();
  }

  send(frame: Uint8Array): boolean {
    if (this._closed) throw new ClosedError('ivshmem-net endpoint is closed');
    this.checkFrame(frame);
    if (!this._carrier) {
      this.stats.txNoCarrier++;
      this.paused = true;
      return false;
    }
    if (!this.txRoom() || !this.queue.enqueue(frame)) {
      this.pause();
      return false;
    }
    this.stats.txPackets++;
    this.stats.txBytes += frame.byteLength;
    this.queue.publish();
    if (!this.queue.txOk()) {
      // Nearly full (c.4 step 4): ask for a completion interrupt and kick now.
      this.queue.requestTxInterrupt();
      this.kick();
    } else if (!this.kickScheduled) {
      // Batch doorbells of back-to-back send() calls (xmit_more).
      this.kickScheduled = true;
      queueMicrotask(this.kickTask);
    }
    return true;
  }

  sendBatch(frames: readonly Uint8Array[]): number {
    if (this._closed) throw new ClosedError('ivshmem-net endpoint is closed');
    for (const f of frames) this.checkFrame(f);
    if (!this._carrier) {
      if (frames.length) {
        this.stats.txNoCarrier += frames.length;
        this.paused = true;
      }
      return 0;
    }
    let n = 0;
    let bytes = 0;
    for (const f of frames) {
      if (!this.txRoom() || !this.queue.enqueue(f)) break;
      n++;
      bytes += f.byteLength;
      // Publish during a long batch so a receiver already polling can start
      // while we copy (the doorbell, if any, is still rung once at the end).
      if ((n & 15) === 0) this.queue.publish();
    }
    if (n > 0) {
      this.stats.txPackets += n;
      this.stats.txBytes += bytes;
      this.queue.publish();
      if (!this.queue.txOk()) this.queue.requestTxInterrupt();
      this.kick();
    }
    if (n < frames.length) this.pause();
    return n;
  }

  private readonly kickTask = (): void => {
    this.kickScheduled = false;
    this.kick();
  };

  /** Ring the peer if vring_need_event says it asked (c.4 step 7). */
  private kick(): void {
    if (this._closed || this.dev.closed) return;
    if (this.queue.txNeedsNotify()) {
      this.stats.txNotify++;
      this.dev.ring(this.peerId, this.dataVector);
    }
  }

  // ------------------------------------------------------------ RX / polling

  private onInterrupt(e: InterruptEvent): void {
    if (this._closed) return;
    if (e.vector === this.stateVector) {
      this.stats.stateInterrupts++;
      this.evaluate();
    }
    if (e.vector === this.dataVector) {
      this.stats.interrupts++;
      if (this.wait === 'event' || !this.spinning) this.poll();
    }
  }

  private schedulePoll(): void {
    if (this.pollScheduled || this._closed) return;
    this.pollScheduled = true;
    setImmediate(this.pollTask);
  }

  /** In-place delivery (receiveInPlace): the view, then a copy for 'frame' listeners and iterators, if any. */
  private readonly lendFrame = (view: Buffer): void => {
    this.stats.rxPackets++;
    this.stats.rxBytes += view.byteLength;
    this.emit('frame-view', view);
    if (this.listenerCount('frame') > 0) this.emit('frame', Buffer.from(view));
  };

  private readonly pollTask = (): void => {
    this.pollScheduled = false;
    this.poll();
  };

  /** One NAPI-style round (c.7): reclaim TX, take up to `budget` frames, notify, deliver. */
  private poll(): void {
    if (this._closed || this.local !== IVSHM_NET_STATE_RUN || !this.queue.attached) {
      this.spinning = false;
      return;
    }
    const q = this.queue;
    this.stats.polls++;
    const reclaimed = q.reclaim();
    let n = 0;
    const batch = this.batch;
    if (this.rxHeld === 0) {
      n = this.listenerCount('frame-view') > 0 ? q.receiveInPlace(this.budget, this.lendFrame) : q.receive(this.budget, batch);
      if (n > 0 && q.rxNeedsNotify()) {
        this.stats.rxNotify++;
        this.dev.ring(this.peerId, this.dataVector);
      }
    }
    let wake = false;
    if (this.paused && this._carrier) {
      if (q.txOk()) {
        this.paused = false;
        wake = true;
      } else if (q.requestTxInterrupt()) this.schedulePoll(); // still short: keep used_event armed
    }
    const more = n === this.budget;
    if (this.wait === 'poll') {
      this.spinning = true;
      this.schedulePoll();
    } else if (this.wait === 'hybrid') {
      const now = process.hrtime.bigint();
      if (n > 0 || reclaimed > 0 || this.lastActivity === 0n) this.lastActivity = now;
      if (more || now - this.lastActivity < this.spinNs) {
        this.spinning = true;
        this.schedulePoll();
      } else {
        this.spinning = false;
        this.lastActivity = 0n;
        this.stats.pollComplete++;
        if (q.enableRxNotify()) this.schedulePoll();
      }
    } else if (more) {
      this.schedulePoll();
    } else if (this.rxHeld === 0) {
      this.stats.pollComplete++;
      if (q.enableRxNotify()) this.schedulePoll(); // raced with a publication
    }
    // Copies (receive()); frames lent in place were delivered during the take.
    const copies = batch.length;
    if (copies > 0) {
      let bytes = 0;
      for (let i = 0; i < copies; i++) bytes += batch[i]!.byteLength;
      this.stats.rxPackets += copies;
      this.stats.rxBytes += bytes;
      for (let i = 0; i < copies; i++) {
        const f = batch[i]!;
        batch[i] = undefined as unknown as Buffer;
        this.emit('frame', f);
      }
      batch.length = 0;
    }
    if (wake) this.emit('writable');
  }

  async *frames(): AsyncIterableIterator<Buffer> {
    if (this._closed) return;
    const queue: Buffer[] = [];
    let head = 0;
    let held = false;
    let done = false;
    let wake: (() => void) | null = null;
    const onFrame = (f: Buffer) => {
      queue.push(f);
      if (!held && queue.length - head >= this.highWater) {
        held = true;
        this.rxHeld++;
      }
      wake?.();
    };
    const onClose = () => {
      done = true;
      wake?.();
    };
    this.on('frame', onFrame);
    this.on('close', onClose);
    try {
      for (;;) {
        if (head < queue.length) {
          const f = queue[head]!;
          queue[head++] = undefined as unknown as Buffer;
          if (head > 1024 && head * 2 > queue.length) {
            queue.splice(0, head);
            head = 0;
          }
          if (held && queue.length - head < this.highWater / 2) {
            held = false;
            this.rxHeld--;
            this.schedulePoll();
          }
          yield f;
          continue;
        }
        if (done) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      this.off('frame', onFrame);
      this.off('close', onClose);
      if (held) {
        this.rxHeld--;
        this.schedulePoll();
      }
    }
  }

  counters(): NetCounters {
    return { ...this.stats, violations: { ...this.stats.violations } };
  }

  regs(): Record<string, number> {
    return { local: this.local, peer: this.lastPeer, mtu: this._mtu, ...this.queue.regs() };
  }

  private teardown(): void {
    this._closed = true;
    this.queue.detach();
    this.spinning = false;
    for (const [ev, fn] of this.devListeners) (this.dev as unknown as EventEmitter).off(ev, fn as (...a: unknown[]) => void);
    this.devListeners.length = 0;
    if (this._carrier) {
      this._carrier = false;
      this.emit('carrier', false);
    }
    this.emit('close');
  }

  /** Leave: write RESET (the peer follows) and stop listening. The device stays open. */
  close(): void {
    if (this._closed) return;
    if (!this.dev.closed) {
      this.local = IVSHM_NET_STATE_RESET;
      this.dev.setState(IVSHM_NET_STATE_RESET);
    }
    this.teardown();
  }
}
