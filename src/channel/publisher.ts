// The publishing side of publish-subscribe with read-only subscribers.
//
// The publisher writes each sample once, into the ring of its own output
// section; subscribers read it in place (docs/spec-channel.md §10). On a
// broker link their mapping of our section is PROT_READ, so the kernel (not
// a convention) stops them from writing.
//
// Overflow policy (as iceoryx2's safe overflow):
//  'overwrite' (default) never wait; when the ring is full, drop the oldest
//              samples, storing the new head *before* writing over them, so a
//              subscriber that finds the head past a sample it read knows the
//              bytes may be torn (§10).
//  'block'     wait until every attached subscriber has consumed enough (a
//              subscriber that stops reading stalls us: by definition).
import { BusyError, ClosedError, InvalidArgumentError } from '../errors.js';
import { PEER_OUTPUT_VIEW, type IvshmemEndpoint } from '../ivshmem/endpoint.js';
import {
  CH_ROLE_PUBLISHER,
  CH_STATE_PHASE_MASK,
  CH_STATE_READY,
  H_HEAD,
  readPeerHeader,
  REC_ALIGN,
  REC_SAMPLE,
  S_RX_HEAD,
  S_RX_SESSION,
  S_TX_ARMED,
  S_TX_WAKE_AT,
  slotIndex,
  words,
} from './layout.js';
import { LinkUser, type LinkUserOptions } from './details/link-user.js';
import { Sender, type ReaderLink } from './details/sender.js';

/** What a publisher does when a subscriber lags: `overwrite` its oldest sample or `block` until it reads. */
export type OverflowPolicy = 'overwrite' | 'block';

/** Sample size, history, overflow policy and wait mode of a publisher. */
export interface PublisherOptions extends LinkUserOptions {
  overflow?: OverflowPolicy;
}

/** The events a publisher emits. */
export interface PublisherEvents {
  'subscriber-up': [{ peer: number }];
  'subscriber-down': [{ peer: number; reason: string }];
  /** An exception thrown by one of our listeners (see LinkUser.emit). */
  error: [unknown];
  close: [{ reason: string }];
}

/** Cumulative counters of a publisher. */
export interface PublisherCounters {
  published: number;
  bytes: number;
  /** Samples dropped unread by some subscriber to make room ('overwrite'). */
  overwritten: number;
  doorbellsRung: number;
  /** Subscribers dropped for reporting an impossible consumer position. */
  badSubscribers: number;
  listenerErrors: number;
}

/** An attached subscriber: its section (wake requests, consumer position) and its last validated position. */
interface SubscriberLink extends ReaderLink {
  readonly view: Uint8Array;
  head: number;
}

/** A zero-copy sample being written: fill `buffer`, then commit() or abort(). */
export class SampleLoan {
  private done = false;
  /** @internal */
  constructor(
    /** Writable bytes inside the ring. Do not keep it after commit()/abort(). */
    readonly buffer: Buffer,
    private readonly pub: Publisher,
  ) {}

  /** Publish the first `length` bytes (default all); returns the sample's sequence number. */
  commit(length = this.buffer.byteLength): number {
    if (this.done) throw new InvalidArgumentError('sample loan was already committed or aborted');
    if (!Number.isInteger(length) || length < 0 || length > this.buffer.byteLength) {
      throw new InvalidArgumentError(`commit length ${length} must be 0..${this.buffer.byteLength}`);
    }
    this.done = true;
    return this.pub.commitLoan(this, length);
  }

  abort(): void {
    if (!this.done) {
      this.done = true;
      this.pub.abortLoan(this);
    }
  }
}

/** The publishing side of publish-subscribe over a link: samples in its own output section, read in place by every subscriber (docs/spec-channel.md). */
export class Publisher extends LinkUser<PublisherEvents> {
  readonly overflow: OverflowPolicy;
  readonly counters: PublisherCounters = { published: 0, bytes: 0, overwritten: 0, doorbellsRung: 0, badSubscribers: 0, listenerErrors: 0 };
  private readonly sender: Sender;
  private readonly subs = new Map<number, SubscriberLink>();
  /** Oldest valid position (stored to H_HEAD before anything older is overwritten). */
  private oldest = 0;
  private openLoan: SampleLoan | null = null;
  private readonly queue: Array<{ data: Uint8Array; resolve: (s: number) => void; reject: (e: Error) => void }> = [];

  constructor(endpoint: IvshmemEndpoint, opts: PublisherOptions = {}) {
    const what = `publisher on peer ${endpoint.id} of link ${endpoint.name}`;
    // Options are checked before super() touches the endpoint's section.
    const overflow = opts.overflow ?? 'overwrite';
    if (overflow !== 'overwrite' && overflow !== 'block') throw new InvalidArgumentError(`${what}: overflow must be 'overwrite' or 'block'`);
    super(endpoint, opts, what);
    this.overflow = overflow;
    this.sec.claimRing(CH_ROLE_PUBLISHER, what);
    this.sec.acquire();
    this.sec.renew();
    this.sender = new Sender(this.sec, endpoint, this.vector, this.counters, 'sample');
    this.listen(null, () => this.scan());
  }

  protected rings(from: number): boolean {
    return this.subs.has(from);
  }
  protected peerState(): void {
    this.scan();
    this.pump.kick();
  }
  protected peerJoined(peer: number): void {
    this.dropSub(peer, 'peer left or rejoined');
    this.scan();
  }
  protected peerGone(peer: number): void {
    this.peerJoined(peer);
  }
  protected recheck(): void {
    this.scan();
  }
  protected work(): boolean {
    return this.drain();
  }
  protected probe(): boolean {
    return this.queue.length > 0 && this.spaceChanged();
  }

  get maxSampleSize(): number {
    return this.sender.maxPayload;
  }

  /** Peers currently attached as subscribers. */
  subscribers(): number[] {
    return [...this.subs.keys()].sort((a, b) => a - b);
  }

  private setSub(k: number, link: SubscriberLink | null): void {
    if (link) this.subs.set(k, link);
    else this.subs.delete(k);
    this.sender.readers = [...this.subs.values()];
  }

  private dropSub(k: number, reason: string): void {
    if (!this.subs.has(k)) return;
    this.setSub(k, null);
    this.emit('subscriber-down', { peer: k, reason });
  }

  /** Find peers whose section says they read our ring: their slot for us carries our session (docs/spec-channel.md §10). */
  private scan(): void {
    if (this.closed) return;
    const ep = this.endpoint;
    const me = ep.id;
    for (let k = 0; k < ep.maxPeers; k++) {
      if (k === me) continue;
      const st = ep.peerState(k) >>> 0;
      const view = st && (st & CH_STATE_PHASE_MASK) === CH_STATE_READY ? ep[PEER_OUTPUT_VIEW](k) : null;
      const cur = this.subs.get(k);
      if (!view) {
        if (cur) this.dropSub(k, 'peer not ready');
        continue;
      }
      const pw = cur && cur.view === view ? cur.pw : words(view, `output section of peer ${k}`);
      const hdr = readPeerHeader(pw, view.byteLength, ep.maxPeers);
      const attached = typeof hdr !== 'string' && Atomics.load(pw, slotIndex(me, S_RX_SESSION)) >>> 0 === this.sec.session;
      if (attached && !cur) {
        this.setSub(k, { peer: k, view, pw, head: this.sender.writer.tail });
        this.emit('subscriber-up', { peer: k });
      } else if (attached && cur && cur.view !== view) {
        this.setSub(k, { peer: k, view, pw, head: cur.head });
      } else if (!attached && cur) this.dropSub(k, 'subscriber detached');
    }
  }

  /** Publish a copy of `data`. Overwrite mode never waits; block mode waits for the slowest subscriber. */
  publish(data: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new ClosedError('publisher is closed'));
    try {
      this.sender.checkSize(data.byteLength);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.queue.length === 0 && !this.openLoan) {
      const s = this.tryPublish(data);
      if (s) return Promise.resolve(s);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ data, resolve, reject });
      this.pump.kick();
    });
  }

  /** Publish now; returns the sequence number, or 0 (block mode, no room). */
  tryPublish(data: Uint8Array): number {
    if (this.closed || this.openLoan || this.queue.length) return 0;
    this.sender.checkSize(data.byteLength);
    const off = this.claim(data.byteLength);
    if (off < 0) return 0;
    this.sender.writer.write(off, data);
    return this.commit(data.byteLength);
  }

  /** Reserve room for a sample of `size` bytes and write it in place. Returns null in block mode when full. */
  loan(size: number): SampleLoan | null {
    if (this.closed) throw new ClosedError('publisher is closed');
    if (this.openLoan) throw new BusyError('a sample loan is already open; commit or abort it first');
    this.sender.checkSize(size);
    const off = this.claim(size);
    if (off < 0) return null;
    this.openLoan = new SampleLoan(this.sec.bytes.subarray(off, off + size), this);
    return this.openLoan;
  }

  /** @internal */
  commitLoan(l: SampleLoan, length: number): number {
    if (l !== this.openLoan) throw new ClosedError('the sample loan is no longer valid');
    return this.commit(length);
  }

  /** @internal */
  abortLoan(l: SampleLoan): void {
    if (l === this.openLoan) {
      this.openLoan = null;
      this.sender.writer.abort();
      this.pump.kick();
    }
  }

  /** The position space may be reused up to: the oldest retained record (overwrite) or the slowest subscriber (block). */
  private claim(size: number): number {
    const s = this.sender;
    if (this.overflow === 'block' && this.subs.size) {
      let off = s.claim(size, this.slowest(false));
      if (off < 0) off = s.claim(size, this.slowest(true));
      if (off < 0) return -1;
      this.advanceOldest(s.writer.need(size));
      return off;
    }
    this.advanceOldest(s.writer.need(size));
    return s.claim(size, this.oldest);
  }

  /** Drop oldest records until `need` bytes are free; H_HEAD is stored before the bytes are reused (docs/spec-channel.md §10). */
  private advanceOldest(need: number): void {
    const w = this.sender.writer;
    let moved = false;
    while (w.size - ((w.tail - this.oldest) >>> 0) < need) {
      if (!w.isPad(this.oldest)) this.counters.overwritten++;
      this.oldest = (this.oldest + w.spanAt(this.oldest)) >>> 0;
      moved = true;
    }
    if (moved) Atomics.store(this.sec.w, H_HEAD, this.oldest | 0);
  }

  /** Slowest attached subscriber position (validated; a bogus one detaches that subscriber). */
  private slowest(refresh: boolean): number {
    const tail = this.sender.writer.tail;
    let min = tail;
    let minUsed = 0;
    for (const [k, s] of this.subs) {
      if (refresh) {
        const v = Atomics.load(s.pw, slotIndex(this.endpoint.id, S_RX_HEAD)) >>> 0;
        if (v % REC_ALIGN !== 0 || ((v - s.head) >>> 0) > ((tail - s.head) >>> 0)) {
          // Ignore a subscriber that reports nonsense rather than stall on it.
          this.counters.badSubscribers++;
          this.dropSub(k, 'violation: consumer-head-out-of-range');
          continue;
        }
        s.head = v;
      }
      const used = (tail - s.head) >>> 0;
      if (used > minUsed) {
        minUsed = used;
        min = s.head;
      }
    }
    return min;
  }

  private commit(length: number): number {
    const seq = this.sender.commit(REC_SAMPLE, length, 0);
    this.openLoan = null;
    this.counters.published++;
    this.counters.bytes += length;
    return seq;
  }

  private spaceChanged(): boolean {
    for (const s of this.subs.values()) if (Atomics.load(s.pw, slotIndex(this.endpoint.id, S_RX_HEAD)) >>> 0 !== s.head) return true;
    return this.subs.size === 0;
  }

  private drain(): boolean {
    let did = false;
    while (this.queue.length && !this.openLoan && !this.closed) {
      const q = this.queue[0]!;
      const off = this.claim(q.data.byteLength);
      if (off < 0) break;
      this.sender.writer.write(off, q.data);
      this.queue.shift();
      q.resolve(this.commit(q.data.byteLength));
      did = true;
    }
    return did;
  }

  protected arm(on: boolean): boolean {
    const want = on && this.queue.length > 0 ? 1 : 0;
    for (const [k, s] of this.subs) {
      this.sec.setSlot(k, S_TX_WAKE_AT, s.head);
      this.sec.setSlot(k, S_TX_ARMED, want);
    }
    return this.queue.length > 0 && this.spaceChanged();
  }

  close(): void {
    this.shutdown('closed', false);
  }

  protected shutdown(reason: string, linkGone: boolean): void {
    if (!this.detach()) return;
    const ep = this.endpoint;
    const err = new ClosedError(`publisher closed (${reason})`);
    for (const q of this.queue.splice(0)) q.reject(err);
    this.subs.clear();
    this.sender.readers = [];
    this.openLoan = null;
    if (!linkGone && !ep.closed) {
      this.sec.releaseRing();
      try {
        ep.setState(0);
      } catch {
        /* closing */
      }
    }
    this.sec.release();
    this.emit('close', { reason });
  }
}
