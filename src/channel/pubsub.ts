// Publish-subscribe with read-only subscribers (issue 5, item 2).
//
// The publisher writes each sample once, into the ring of its own output
// section. Subscribers read it in place: on a broker link their mapping of
// the publisher's section is PROT_READ, so the kernel (not a convention)
// stops them from writing. The library never hands out that mapping: a
// Sample only offers reads and copies.
//
// Overflow policy (iceoryx2's enable_safe_overflow, anchors.md 1.1):
//  'overwrite' (default) the publisher never waits; when the ring is full it
//              drops the oldest samples, advancing H_HEAD *before* it writes
//              over them, so a subscriber that finds H_HEAD past a sample it
//              read knows the bytes may be torn and discards them (a seqlock).
//              A lapped subscriber resynchronises at H_HEAD and is told how many
//              samples it missed (sequence-number gap).
//  'block'     the publisher waits until every attached subscriber has consumed
//              enough (a subscriber that stops reading stalls it: by definition).
import { createHash } from 'node:crypto';
import { BusyError, ClosedError, InvalidArgumentError } from '../errors.js';
import { PEER_OUTPUT_VIEW, type IvshmemEndpoint } from '../ivshmem/endpoint.js';
import {
  CH_ROLE_PUBLISHER,
  CH_STATE_PHASE_MASK,
  CH_STATE_READY,
  H_HEAD,
  H_TAIL,
  needEvent,
  readPeerHeader,
  REC_ALIGN,
  REC_SAMPLE,
  S_RX_ARMED,
  S_RX_HEAD,
  S_RX_SEQ,
  S_RX_SESSION,
  S_RX_WAKE_AT,
  S_TX_ARMED,
  S_TX_WAKE_AT,
  slotIndex,
  words,
} from './layout.js';
import { Inbox, LinkUser, OnePeerUser, otherPeer, type LinkUserOptions } from './link-user.js';
import { newRecordView, RingReader, RingWriter } from './ring.js';

export type OverflowPolicy = 'overwrite' | 'block';

// ------------------------------------------------------------------ publisher

export interface PublisherOptions extends LinkUserOptions {
  overflow?: OverflowPolicy;
}

interface SubscriberLink {
  view: Uint8Array;
  pw: Int32Array;
}

/** A zero-copy sample being written. */
export class SampleLoan {
  private done = false;
  constructor(
    readonly buffer: Buffer,
    private readonly pub: Publisher,
  ) {}
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

export interface PublisherEvents {
  'subscriber-up': [{ peer: number }];
  'subscriber-down': [{ peer: number; reason: string }];
  close: [{ reason: string }];
}

export class Publisher extends LinkUser<PublisherEvents> {
  readonly overflow: OverflowPolicy;
  readonly counters = { published: 0, bytes: 0, overwritten: 0, doorbellsRung: 0, badSubscribers: 0 };
  private readonly writer: RingWriter;
  private readonly subs = new Map<number, SubscriberLink>();
  private readonly heads = new Map<number, number>();
  /** Oldest valid position (mirrored to H_HEAD before anything older is overwritten). */
  private oldest = 0;
  private nextSeq = 1;
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
    this.writer = new RingWriter(this.sec.bytes, this.sec.w, this.sec.geo.ringOffset, this.sec.geo.ringSize);
    this.writer.reset(0);
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
    return this.writer.maxPayload;
  }
  /** Peers currently attached as subscribers. */
  subscribers(): number[] {
    return [...this.subs.keys()].sort((a, b) => a - b);
  }

  private dropSub(k: number, reason: string): void {
    if (this.subs.delete(k)) {
      this.heads.delete(k);
      this.emit('subscriber-down', { peer: k, reason });
    }
  }

  /** Find peers whose section says they read our ring (their slot for us carries our session). */
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
        this.subs.set(k, { view, pw });
        this.heads.set(k, this.writer.tail);
        this.emit('subscriber-up', { peer: k });
      } else if (attached && cur && cur.view !== view) {
        this.subs.set(k, { view, pw });
      } else if (!attached && cur) this.dropSub(k, 'subscriber detached');
    }
  }

  /** Publish a copy of `data`. Overwrite mode never waits; block mode waits for the slowest subscriber. */
  publish(data: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new ClosedError('publisher is closed'));
    try {
      this.checkSize(data.byteLength);
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
    this.checkSize(data.byteLength);
    const off = this.claim(data.byteLength);
    if (off < 0) return 0;
    this.writer.write(off, data);
    return this.commit(data.byteLength);
  }

  /** Reserve room for a sample of `size` bytes and write it in place. Returns null in block mode when full. */
  loan(size: number): SampleLoan | null {
    if (this.closed) throw new ClosedError('publisher is closed');
    if (this.openLoan) throw new BusyError('a sample loan is already open; commit or abort it first');
    this.checkSize(size);
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
      this.writer.abort();
      this.pump.kick();
    }
  }

  private checkSize(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.writer.maxPayload) {
      throw new InvalidArgumentError(`sample of ${n} bytes exceeds the limit of ${this.writer.maxPayload} bytes (half the ring); start the link with a larger --output-size`);
    }
  }

  /** The position space may be reused up to: the oldest retained record (overwrite) or the slowest subscriber (block). */
  private claim(size: number): number {
    const w = this.writer;
    if (this.overflow === 'block' && this.subs.size) {
      let off = w.claim(size, this.slowest(false));
      if (off < 0) off = w.claim(size, this.slowest(true));
      if (off < 0) return -1;
      this.advanceOldest(w.need(size));
      return off;
    }
    this.advanceOldest(w.need(size));
    return w.claim(size, this.oldest);
  }

  /** Drop oldest records until `need` bytes are free; H_HEAD is stored before the bytes are reused. */
  private advanceOldest(need: number): void {
    const w = this.writer;
    let moved = false;
    while (w.size - ((w.tail - this.oldest) >>> 0) < need) {
      const r = w.recordAt(this.oldest);
      if (!r.pad) this.counters.overwritten++;
      this.oldest = (this.oldest + (r.pad ? w.size - (this.oldest & w.mask) : r.total)) >>> 0;
      moved = true;
    }
    if (moved) Atomics.store(this.sec.w, H_HEAD, this.oldest | 0);
  }

  /** Slowest attached subscriber position (validated; a bogus one detaches that subscriber). */
  private slowest(refresh: boolean): number {
    const tail = this.writer.tail;
    let min = tail;
    let minUsed = 0;
    for (const [k, s] of this.subs) {
      let h = this.heads.get(k) ?? tail;
      if (refresh) {
        const v = Atomics.load(s.pw, slotIndex(this.endpoint.id, S_RX_HEAD)) >>> 0;
        const old = h;
        if (v % REC_ALIGN !== 0 || ((v - old) >>> 0) > ((tail - old) >>> 0)) {
          // Ignore a subscriber that reports nonsense rather than stall on it.
          this.counters.badSubscribers++;
          this.dropSub(k, 'violation: consumer-head-out-of-range');
          continue;
        }
        h = v;
        this.heads.set(k, h);
      }
      const used = (tail - h) >>> 0;
      if (used > minUsed) {
        minUsed = used;
        min = h;
      }
    }
    return min;
  }

  private commit(length: number): number {
    const seq = this.nextSeq;
    this.nextSeq = (seq + 1) >>> 0 || 1;
    const old = this.writer.tail;
    const tail = this.writer.commit(REC_SAMPLE, length, seq, 0);
    this.openLoan = null;
    this.counters.published++;
    this.counters.bytes += length;
    const me = this.endpoint.id;
    for (const [k, s] of this.subs) {
      if (Atomics.load(s.pw, slotIndex(me, S_RX_ARMED)) === 1 && needEvent(Atomics.load(s.pw, slotIndex(me, S_RX_WAKE_AT)) >>> 0, tail, old)) {
        this.counters.doorbellsRung++;
        this.endpoint.ring(k, this.vector);
      }
    }
    return seq;
  }

  private spaceChanged(): boolean {
    for (const [k, s] of this.subs) if (Atomics.load(s.pw, slotIndex(this.endpoint.id, S_RX_HEAD)) >>> 0 !== this.heads.get(k)) return true;
    return this.subs.size === 0;
  }

  private drain(): boolean {
    let did = false;
    while (this.queue.length && !this.openLoan && !this.closed) {
      const q = this.queue[0]!;
      const off = this.claim(q.data.byteLength);
      if (off < 0) break;
      this.writer.write(off, q.data);
      this.queue.shift();
      q.resolve(this.commit(q.data.byteLength));
      did = true;
    }
    return did;
  }

  protected arm(on: boolean): boolean {
    const want = on && this.queue.length > 0 ? 1 : 0;
    for (const k of this.subs.keys()) {
      this.sec.setSlot(k, S_TX_WAKE_AT, this.heads.get(k) ?? 0);
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

// ----------------------------------------------------------------- subscriber

export interface SubscriberOptions extends LinkUserOptions {
  /** Peer ID of the publisher; default: the other peer on a 2-peer link. */
  publisher?: number;
  /** Samples still in the publisher's ring to deliver on attach (default 0: only new ones). */
  history?: number;
  /** Samples queued for the async iterator before reading stops (they are copies). Default 64. */
  highWaterMark?: number;
}

/**
 * A received sample. In a 'sample' event it reads the publisher's section in
 * place (read-only: no method writes, and the mapping is PROT_READ); it is only
 * guaranteed until the listener returns, and in 'overwrite' mode the publisher
 * may reuse it even sooner, so every read that copies checks `valid` after.
 * From the async iterator it is a private copy.
 */
export class Sample {
  // True JS private fields: the mapping is not reachable from outside (not even by Object.values).
  readonly #src: Uint8Array | null;
  readonly #offset: number;
  readonly #check: (() => boolean) | null;
  readonly #owned: Buffer | null;
  readonly byteLength: number;
  readonly seq: number;
  /** Samples lost (overwritten before we read them) just before this one. */
  readonly missed: number;

  /** @internal */
  constructor(src: Uint8Array | null, offset: number, byteLength: number, seq: number, missed: number, check: (() => boolean) | null, owned: Buffer | null) {
    this.#src = src;
    this.#offset = offset;
    this.#check = check;
    this.#owned = owned;
    this.byteLength = byteLength;
    this.seq = seq;
    this.missed = missed;
  }

  /** True while the bytes are still the ones published (always for copies). */
  get valid(): boolean {
    return this.#owned !== null || (this.#check !== null && this.#check());
  }

  private bytes(): Uint8Array {
    if (this.#owned) return this.#owned;
    if (!this.#check!()) throw new ClosedError(`sample ${this.seq} is no longer available (overwritten or the publisher left); copy it in the listener`);
    return this.#src!.subarray(this.#offset, this.#offset + this.byteLength);
  }

  /** Copy into `target`; returns bytes copied, or -1 if the sample was overwritten meanwhile (target content undefined). */
  copyTo(target: Uint8Array, targetStart = 0, sourceStart = 0, sourceEnd = this.byteLength): number {
    if (!this.valid) return -1;
    const s = Math.max(0, Math.min(sourceStart, this.byteLength));
    const e = Math.max(s, Math.min(sourceEnd, this.byteLength, s + target.byteLength - targetStart));
    target.set(this.bytes().subarray(s, e), targetStart);
    return this.valid ? e - s : -1;
  }

  /** A private copy, or null if the sample was overwritten before the copy completed. */
  toBuffer(): Buffer | null {
    if (this.#owned) return Buffer.from(this.#owned);
    if (!this.valid) return null;
    const b = Buffer.allocUnsafe(this.byteLength);
    b.set(this.bytes());
    return this.valid ? b : null;
  }

  readUInt8(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.byteLength) throw new InvalidArgumentError(`index ${i} outside sample of ${this.byteLength} bytes`);
    return this.bytes()[i]!;
  }

  readUInt32LE(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i + 4 > this.byteLength) throw new InvalidArgumentError(`offset ${i} outside sample of ${this.byteLength} bytes`);
    const b = this.bytes();
    return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  }

  /** Hash the bytes in place; null if the sample was overwritten meanwhile. */
  digest(algorithm = 'sha256'): string | null {
    if (!this.valid) return null;
    const d = createHash(algorithm).update(this.bytes()).digest('hex');
    return this.valid ? d : null;
  }
}

export interface SubscriberEvents {
  sample: [Sample];
  'publisher-up': [{ peer: number; session: number }];
  'publisher-down': [{ peer: number; reason: string; lastSeq: number }];
  violation: [{ peer: number; reason: string; message: string }];
  close: [{ reason: string }];
}

export class Subscriber extends OnePeerUser<SubscriberEvents> {
  readonly publisher: number;
  readonly history: number;
  readonly counters = { received: 0, bytes: 0, missed: 0, resyncs: 0, violations: 0, doorbellsRung: 0 };
  broken: string | null = null;
  private readonly rec = newRecordView();
  private view: Uint8Array | null = null;
  private pw: Int32Array | null = null;
  private pubSession = 0;
  private brokenSession = 0;
  private reader: RingReader | null = null;
  /** Expected next sequence; 0 = unknown (after attach or a resync). */
  private expect = 0;
  private pendingMissed = 0;
  private resynced = false;
  private lastSeq = 0;
  /** Bumped whenever the publisher's mapping may be gone: in-place samples check it. */
  private generation = 0;
  private readonly inbox: Inbox<Sample>;

  constructor(endpoint: IvshmemEndpoint, opts: SubscriberOptions = {}) {
    const what = `subscriber on peer ${endpoint.id} of link ${endpoint.name}`;
    // Options are checked before super() touches the endpoint's section.
    const publisher = otherPeer(endpoint, opts.publisher, 'publisher', what);
    const history = opts.history ?? 0;
    if (!Number.isInteger(history) || history < 0) throw new InvalidArgumentError(`${what}: history must be a non-negative integer`);
    super(endpoint, opts, what);
    this.publisher = publisher;
    this.history = history;
    this.inbox = new Inbox(opts.highWaterMark ?? 64, () => this.pump.kick(), () => this.closed);
    this.sec.acquire();
    this.sec.clearSlot(this.publisher);
    this.listen('sample', () => {
      this.sync();
      this.pump.start();
    });
  }

  protected get remote(): number {
    return this.publisher;
  }
  protected lost(reason: string): void {
    this.down(reason);
  }
  protected recheck(): void {
    this.sync();
  }
  protected work(): boolean {
    return this.receive();
  }

  get isConnected(): boolean {
    return this.reader !== null;
  }

  ready(): Promise<void> {
    if (this.reader) return Promise.resolve();
    if (this.closed) return Promise.reject(new ClosedError('subscriber is closed'));
    return new Promise((resolve) => this.once('publisher-up', () => resolve()));
  }

  protected dropView(): void {
    this.generation++;
    this.view = null;
    this.pw = null;
    this.reader = null;
  }

  protected sync(): void {
    if (this.closed) return;
    const ep = this.endpoint;
    const st = ep.peerState(this.publisher) >>> 0;
    if (st === 0 || (st & CH_STATE_PHASE_MASK) !== CH_STATE_READY) {
      if (this.pubSession) this.down(st === 0 ? 'publisher reset its state' : `publisher state 0x${st.toString(16)}`);
      return;
    }
    const view = ep[PEER_OUTPUT_VIEW](this.publisher);
    if (!view) return;
    if (view !== this.view) {
      this.dropView();
      this.view = view;
      this.pw = words(view, `output section of peer ${this.publisher}`);
    }
    const hdr = readPeerHeader(this.pw!, view.byteLength, ep.maxPeers);
    if (typeof hdr === 'string') return;
    if (hdr.session !== ((st & ~CH_STATE_PHASE_MASK) >>> 0) || hdr.role !== CH_ROLE_PUBLISHER || hdr.session === this.brokenSession) return;
    if (hdr.session !== this.pubSession) {
      if (this.pubSession) this.down('publisher restarted');
      this.attach(hdr.session, hdr.ringOffset, hdr.ringSize);
    }
  }

  private attach(session: number, base: number, size: number): void {
    const pw = this.pw!;
    const tail = Atomics.load(pw, H_TAIL) >>> 0;
    const head = Atomics.load(pw, H_HEAD) >>> 0;
    if (tail % REC_ALIGN || head % REC_ALIGN || ((tail - head) >>> 0) > size) {
      this.pubSession = session;
      this.violation('head-out-of-range', `publisher head ${head} / tail ${tail} at attach`);
      return;
    }
    let start = tail;
    if (this.history > 0) start = this.historyStart(pw, base, size, head, tail);
    const r = new RingReader(pw, base, size, start, 0, [REC_SAMPLE]);
    r.tail = tail;
    this.pubSession = session;
    this.broken = null;
    this.brokenSession = 0;
    this.expect = 0;
    this.pendingMissed = 0;
    this.reader = r;
    const p = this.publisher;
    this.sec.clearSlot(p);
    this.sec.setSlot(p, S_RX_HEAD, start);
    this.sec.setSlot(p, S_RX_SESSION, session);
    this.emit('publisher-up', { peer: p, session });
    // Tell the publisher we are here (its 'block' policy counts us from now).
    this.endpoint.ring(p, this.vector);
    this.pump.kick();
  }

  /** Walk the retained records from head to tail (bounded) and start `history` records before the tail. */
  private historyStart(pw: Int32Array, base: number, size: number, head: number, tail: number): number {
    const r = new RingReader(pw, base, size, head, 0, [REC_SAMPLE]);
    r.tail = tail;
    const starts: number[] = [];
    for (let i = 0; i < size >>> 4 && r.available; i++) {
      if (r.parse(this.rec)) break;
      starts.push(this.rec.pos);
      r.pos = this.rec.end;
    }
    // If the publisher overwrote what we walked, fall back to the live edge.
    const h2 = Atomics.load(pw, H_HEAD) >>> 0;
    if (((h2 - head) >>> 0) !== 0 && starts.length && ((h2 - starts[0]!) | 0) > 0) return tail;
    return starts.length > this.history ? starts[starts.length - this.history]! : (starts[0] ?? tail);
  }

  private down(reason: string): void {
    if (!this.pubSession) return;
    this.pubSession = 0;
    this.reader = null;
    this.generation++;
    if (!this.closed && !this.endpoint.closed) this.sec.clearSlot(this.publisher);
    this.emit('publisher-down', { peer: this.publisher, reason, lastSeq: this.lastSeq });
  }

  private violation(reason: string, detail: string): false {
    const s = this.pubSession;
    this.counters.violations++;
    this.down(`violation: ${reason}`);
    this.broken = reason;
    this.brokenSession = s;
    this.emit('violation', {
      peer: this.publisher,
      reason,
      message: `publisher ${this.publisher} of link ${this.endpoint.name} broke the pub-sub protocol (${reason}): ${detail}; waiting for it to restart`,
    });
    return false;
  }

  private canDeliver(): boolean {
    return this.listenerCount('sample') > 0 || this.inbox.hasRoom;
  }

  protected probe(): boolean {
    const r = this.reader;
    return !!r && !this.closed && r.peekTail() !== r.pos && this.canDeliver();
  }

  protected arm(on: boolean): boolean {
    const r = this.reader;
    if (r && !this.closed) {
      this.sec.setSlot(this.publisher, S_RX_WAKE_AT, r.pos);
      this.sec.setSlot(this.publisher, S_RX_ARMED, on ? 1 : 0);
    }
    return this.probe();
  }

  /** Lapped: jump to the publisher's oldest retained record. */
  private resync(r: RingReader, head: number): void {
    // The gap is counted from the next sequence number we see.
    this.counters.resyncs++;
    this.resynced = true;
    r.pos = head;
  }

  private receive(): boolean {
    const r = this.reader;
    if (!r || this.closed || !this.canDeliver()) return false;
    const pw = this.pw!;
    const tail = Atomics.load(pw, H_TAIL) >>> 0;
    if (tail % REC_ALIGN) return this.violation('tail-misaligned', `tail ${tail}`);
    if (tail === r.pos) return false;
    let head = Atomics.load(pw, H_HEAD) >>> 0;
    if (head % REC_ALIGN || ((tail - head) >>> 0) > r.size) return this.violation('head-out-of-range', `head ${head}, tail ${tail}`);
    // Behind the oldest retained record: we were lapped.
    if (((tail - r.pos) >>> 0) > ((tail - head) >>> 0)) this.resync(r, head);
    r.tail = tail;
    const view = this.view!;
    const gen = this.generation;
    let budget = r.size >>> 4;
    const old = r.pos;
    let did = false;
    while (r.available && budget-- > 0 && this.reader === r && this.canDeliver()) {
      const e = r.parse(this.rec);
      head = Atomics.load(pw, H_HEAD) >>> 0;
      const lapped = ((head - r.pos) | 0) > 0;
      if (lapped) {
        this.resync(r, head);
        const t2 = Atomics.load(pw, H_TAIL) >>> 0;
        if (t2 % REC_ALIGN || ((t2 - head) >>> 0) > r.size) return this.violation('tail-out-of-range', `tail ${t2}, head ${head}`);
        r.tail = t2;
        continue;
      }
      if (e) return this.violation(e, `record at position ${r.pos}`);
      const rec = this.rec;
      let missed = 0;
      if (this.expect !== 0 && rec.seq !== this.expect) {
        missed = (rec.seq - this.expect) >>> 0;
        // A sequence that goes backwards, or a gap without a lap, is a lie.
        if (missed > 0x7fffffff || !this.resynced) return this.violation('seq-mismatch', `sample sequence ${rec.seq}, expected ${this.expect}`);
      }
      this.resynced = false;
      missed += this.pendingMissed;
      this.pendingMissed = 0;
      this.expect = (rec.seq + 1) >>> 0 || 1;
      this.lastSeq = rec.seq;
      r.pos = rec.end;
      this.counters.received++;
      this.counters.bytes += rec.length;
      this.counters.missed += missed;
      did = true;
      const pos = rec.pos;
      const check = () => this.generation === gen && !this.closed && ((Atomics.load(pw, H_HEAD) - pos) | 0) <= 0;
      if (this.listenerCount('sample') > 0) {
        const s = new Sample(view, rec.offset, rec.length, rec.seq, missed, check, null);
        try {
          this.emit('sample', s);
        } catch (err) {
          queueMicrotask(() => {
            throw err;
          });
        }
      } else {
        const copy = Buffer.allocUnsafe(rec.length);
        copy.set(view.subarray(rec.offset, rec.offset + rec.length));
        if (!check()) {
          this.pendingMissed += 1;
          this.counters.missed++;
          this.counters.received--;
          continue;
        }
        const s = new Sample(null, 0, rec.length, rec.seq, missed, null, copy);
        this.inbox.put(s);
      }
    }
    if (this.reader === r && !this.closed) {
      this.sec.setSlot(this.publisher, S_RX_SEQ, this.lastSeq);
      this.sec.setSlot(this.publisher, S_RX_HEAD, r.pos);
      if (Atomics.load(pw, slotIndex(this.endpoint.id, S_TX_ARMED)) === 1 && needEvent(Atomics.load(pw, slotIndex(this.endpoint.id, S_TX_WAKE_AT)) >>> 0, r.pos, old)) {
        this.counters.doorbellsRung++;
        this.endpoint.ring(this.publisher, this.vector);
      }
    }
    return did;
  }

  /** Busy-poll: deliver what the publisher published, synchronously; returns the number of samples (see Channel.poll). */
  poll(): number {
    if (this.closed) return 0;
    const before = this.counters.received;
    this.receive();
    return this.counters.received - before;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Sample> {
    return this.inbox.iterator();
  }

  close(): void {
    this.shutdown('closed', false);
  }

  protected shutdown(reason: string, linkGone: boolean): void {
    if (!this.detach()) return;
    this.generation++;
    const ep = this.endpoint;
    this.inbox.end();
    this.reader = null;
    this.view = null;
    this.pw = null;
    if (!linkGone && !ep.closed) this.sec.clearSlot(this.publisher);
    this.sec.release();
    this.emit('close', { reason });
  }
}
