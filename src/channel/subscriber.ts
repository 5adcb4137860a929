// The subscribing side of publish-subscribe: reads one publisher's ring in
// place (docs/spec-channel.md §10). It writes only its own section: its
// consumer position and wake request in its slot for the publisher.
//
// A slow subscriber is lapped in 'overwrite' mode: it notices that the
// publisher's head passed its position, resynchronises at the head and tells
// how many samples it missed from the gap in sequence numbers. That needs
// the sequence number the first record will carry, so attaching walks the
// retained records once (§10 "Attach").
import { ClosedError, InvalidArgumentError } from '../errors.js';
import type { IvshmemEndpoint } from '../ivshmem/endpoint.js';
import { CH_ROLE_PUBLISHER, H_HEAD, H_TAIL, REC_ALIGN, REC_SAMPLE, S_RX_HEAD, S_RX_SESSION } from './layout.js';
import { Sample, SampleSource } from './sample.js';
import { newRecordView, RingReader } from './details/framing.js';
import { Inbox } from './details/inbox.js';
import { OnePeerUser, otherPeer, type LinkUserOptions } from './details/link-user.js';
import { PeerSession } from './details/peer-session.js';
import { Receiver } from './details/receiver.js';

/** Publisher peer and wait mode of a subscriber. */
export interface SubscriberOptions extends LinkUserOptions {
  /** Peer ID of the publisher; default: the other peer on a 2-peer link. */
  publisher?: number;
  /** Samples still in the publisher's ring to deliver on attach (default 0: only new ones). */
  history?: number;
  /** Samples queued for the async iterator before reading stops (they are copies). Default 64. */
  highWaterMark?: number;
}

/** The events a subscriber emits. */
export interface SubscriberEvents {
  sample: [Sample];
  'publisher-up': [{ peer: number; session: number }];
  'publisher-down': [{ peer: number; reason: string; lastSeq: number }];
  violation: [{ peer: number; reason: string; message: string }];
  /** An exception thrown by one of our listeners (see LinkUser.emit). */
  error: [unknown];
  close: [{ reason: string }];
}

/** Cumulative counters of a subscriber (received, missed). */
export interface SubscriberCounters {
  received: number;
  bytes: number;
  /** Samples overwritten before we read them (the sum of the samples' `missed`). */
  missed: number;
  /** Times we were lapped and jumped to the publisher's oldest sample. */
  resyncs: number;
  /** Samples overwritten while the async iterator's copy was taken (dropped; counted in `missed`). */
  tornCopies: number;
  violations: number;
  doorbellsRung: number;
  listenerErrors: number;
}

/** Walks of the retained records tried at once when attaching before waiting for the next turn. */
const ATTACH_TRIES = 8;

/** The subscribing side of publish-subscribe: reads a publisher's samples and counts the ones it missed. */
export class Subscriber extends OnePeerUser<SubscriberEvents> {
  readonly publisher: number;
  readonly history: number;
  readonly counters: SubscriberCounters = { received: 0, bytes: 0, missed: 0, resyncs: 0, tornCopies: 0, violations: 0, doorbellsRung: 0, listenerErrors: 0 };
  broken: string | null = null;
  private readonly ps: PeerSession;
  private rx: Receiver | null = null;
  private source: SampleSource | null = null;
  /** Sequence number the next record should carry (0: unknown). */
  private expect = 0;
  /** Samples lost since the last one delivered that the sequence numbers do not show (torn copies). */
  private pendingMissed = 0;
  private resynced = false;
  private lastSeq = 0;
  private readonly inbox: Inbox<Sample>;
  /** Set by readEnds(). */
  private readonly ends = { head: 0, tail: 0 };

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
    this.ps = new PeerSession(endpoint, publisher, CH_ROLE_PUBLISHER, 'publisher', () => this.forget());
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
    // Not attached yet (or the last attach found the ring moving under it): look again.
    if (!this.rx && !this.closed) this.sync();
    return this.receive();
  }

  get isConnected(): boolean {
    return this.rx !== null;
  }

  ready(): Promise<void> {
    if (this.rx) return Promise.resolve();
    if (this.closed) return Promise.reject(new ClosedError('subscriber is closed'));
    return new Promise((resolve) => this.once('publisher-up', () => resolve()));
  }

  /** Whatever was read through the publisher's mapping is void (samples in place included). */
  private forget(): void {
    this.rx = null;
    if (this.source) this.source.live = false;
    this.source = null;
  }

  protected dropView(): void {
    this.ps.drop();
  }

  protected sync(): void {
    if (this.closed) return;
    switch (this.ps.look()) {
      case 'down':
        this.down(this.ps.downReason);
        return;
      case 'new':
        if (this.ps.session) this.down('publisher restarted');
        this.attach();
        return;
      default:
        return;
    }
  }

  private attach(): void {
    const ps = this.ps;
    const hdr = ps.header!;
    const pw = ps.pw!;
    const view = ps.view!;
    let found: { start: number; expect: number } | string | null = null;
    for (let i = 0; i < ATTACH_TRIES && found === null; i++) found = this.locate(pw, hdr.ringOffset, hdr.ringSize);
    if (found === null) return; // the publisher kept overwriting what we walked: next turn
    ps.session = hdr.session;
    if (typeof found === 'string') {
      this.violation(found, 'in the retained records at attach');
      return;
    }
    const ring = new RingReader(pw, hdr.ringOffset, hdr.ringSize, found.start, [REC_SAMPLE]);
    this.broken = null;
    ps.brokenSession = 0;
    this.expect = found.expect;
    this.pendingMissed = 0;
    this.resynced = false;
    this.source = new SampleSource(view, pw);
    const p = this.publisher;
    this.sec.clearSlot(p);
    this.sec.setSlot(p, S_RX_HEAD, found.start);
    this.sec.setSlot(p, S_RX_SESSION, hdr.session);
    this.rx = new Receiver(this.sec, this.endpoint, p, pw, this.vector, this.counters, ring);
    this.emit('publisher-up', { peer: p, session: hdr.session });
    // Tell the publisher we are here (its 'block' policy counts us from now).
    this.endpoint.ring(p, this.vector);
    this.pump.kick();
  }

  /**
   * Where to start reading and the sequence number found there
   * (docs/spec-channel.md §10 "Attach"): walk the retained records from the
   * publisher's head to its tail (bounded by the ring), each record checked
   * as in receive() and checked again against the head after it was read
   * (a record the head has passed may be torn). Returns null when the
   * publisher overwrote the record we were at (walk again), or a violation.
   */
  private locate(pw: Int32Array, base: number, size: number): { start: number; expect: number } | string | null {
    const bad = this.readEnds(pw, size);
    if (bad) return bad === 'moving' ? null : bad;
    const { head, tail } = this.ends;
    if (head === tail) {
      // Nothing retained: a session that has not published yet starts at 0
      // with sequence 1; otherwise the publisher is between dropping records
      // and writing the next one.
      return tail === 0 ? { start: 0, expect: 1 } : null;
    }
    const r = new RingReader(pw, base, size, head, [REC_SAMPLE]);
    r.tail = tail;
    const rec = newRecordView();
    // The last `history` + 1 records seen: positions and sequence numbers.
    const keep = this.history + 1;
    const pos: number[] = [];
    const seq: number[] = [];
    for (let i = 0; i <= size >>> 4 && r.available; i++) {
      const e = r.parse(rec);
      // Passed by the head while we read it: what we read may be torn.
      if (((Atomics.load(pw, H_HEAD) - r.pos) | 0) > 0) return null;
      if (e) return e;
      if (seq.length && rec.seq !== ((seq[seq.length - 1]! + 1) >>> 0 || 1)) return 'seq-mismatch';
      pos.push(rec.pos);
      seq.push(rec.seq);
      if (pos.length > keep) {
        pos.shift();
        seq.shift();
      }
      r.pos = rec.end;
    }
    const last = seq[seq.length - 1]!;
    if (this.history === 0) return { start: tail, expect: (last + 1) >>> 0 || 1 };
    const j = Math.max(0, pos.length - this.history);
    return { start: pos[j]!, expect: seq[j]! };
  }

  private down(reason: string): void {
    if (!this.ps.session) return;
    this.ps.session = 0;
    this.forget();
    if (!this.closed && !this.endpoint.closed) this.sec.clearSlot(this.publisher);
    this.emit('publisher-down', { peer: this.publisher, reason, lastSeq: this.lastSeq });
  }

  private violation(reason: string, detail: string): false {
    const s = this.ps.session;
    this.counters.violations++;
    this.down(`violation: ${reason}`);
    this.broken = reason;
    this.ps.brokenSession = s;
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
    const rx = this.rx;
    return rx !== null && !this.closed && rx.pending && this.canDeliver();
  }

  protected arm(on: boolean): boolean {
    if (this.closed) return false;
    this.rx?.arm(on);
    return this.probe();
  }

  /**
   * A consistent pair of the publisher's head and tail (docs/spec-channel.md
   * §10): the head read before and after the tail, unchanged, so both held at
   * the moment the tail was read and must satisfy head <= tail <= head + size.
   * Reading them one after the other instead would let an honest publisher
   * that moved in between look like a liar. Sets `ends`; returns null, a
   * violation reason, or 'moving' when the publisher did not hold still for
   * a few tries (look again next turn).
   */
  private readEnds(pw: Int32Array, size: number): string | null {
    for (let i = 0; i < 4; i++) {
      const h = Atomics.load(pw, H_HEAD) >>> 0;
      const t = Atomics.load(pw, H_TAIL) >>> 0;
      if ((Atomics.load(pw, H_HEAD) >>> 0) !== h) continue;
      if (t % REC_ALIGN) return 'tail-misaligned';
      if (h % REC_ALIGN || ((t - h) >>> 0) > size) return 'head-out-of-range';
      this.ends.head = h;
      this.ends.tail = t;
      return null;
    }
    return 'moving';
  }

  /** Lapped: jump to the publisher's oldest retained record; the gap is counted from the next sequence number we see. */
  private resync(r: RingReader, head: number): void {
    this.counters.resyncs++;
    this.resynced = true;
    r.pos = head;
  }

  private receive(): boolean {
    const rx = this.rx;
    const src = this.source;
    if (!rx || !src || this.closed || !this.canDeliver()) return false;
    const pw = rx.pw;
    const r = rx.ring;
    const rec = rx.rec;
    // Hot path: nothing new, nothing to check.
    if (r.peekTail() === r.pos) return false;
    const bad = this.readEnds(pw, r.size);
    if (bad === 'moving') return false;
    if (bad) return this.violation(bad, `head ${Atomics.load(pw, H_HEAD) >>> 0}, tail ${Atomics.load(pw, H_TAIL) >>> 0}`);
    const { head, tail } = this.ends;
    // Behind the oldest retained record: we were lapped.
    if (((tail - r.pos) >>> 0) > ((tail - head) >>> 0)) this.resync(r, head);
    r.tail = tail;
    let budget = r.size >>> 4;
    let did = false;
    while (r.available && budget-- > 0 && this.rx === rx && this.canDeliver()) {
      const e = r.parse(rec);
      // What parse() read is good only if the head has not passed the record since (§10).
      if (((Atomics.load(pw, H_HEAD) - r.pos) | 0) > 0) {
        // Lapped while reading: start again at the oldest retained record.
        const again = this.readEnds(pw, r.size);
        if (again === 'moving') break;
        if (again) return this.violation(again, `head ${this.ends.head}, tail ${this.ends.tail}`);
        this.resync(r, this.ends.head);
        r.tail = this.ends.tail;
        continue;
      }
      if (e) return this.violation(e, `record at position ${r.pos}`);
      let gap = 0;
      if (this.expect !== 0 && rec.seq !== this.expect) {
        gap = (rec.seq - this.expect) >>> 0;
        // A sequence that goes backwards, or a gap without a lap, is a lie.
        if (gap > 0x7fffffff || !this.resynced) return this.violation('seq-mismatch', `sample sequence ${rec.seq}, expected ${this.expect}`);
      }
      this.resynced = false;
      this.expect = (rec.seq + 1) >>> 0 || 1;
      r.pos = rec.end;
      did = true;
      let copy: Buffer | null = null;
      if (this.listenerCount('sample') === 0) {
        // For the iterator: a private copy, good only if the head did not pass the record meanwhile.
        copy = Buffer.allocUnsafe(rec.length);
        copy.set(src.view.subarray(rec.offset, rec.offset + rec.length));
        if (!src.intact(rec.pos)) {
          // Dropped: it and the gap before it go to the next sample's `missed`.
          this.counters.tornCopies++;
          this.counters.missed += gap + 1;
          this.pendingMissed += gap + 1;
          continue;
        }
      }
      const missed = gap + this.pendingMissed;
      this.pendingMissed = 0;
      this.lastSeq = rec.seq;
      this.counters.received++;
      this.counters.bytes += rec.length;
      this.counters.missed += gap;
      if (copy) this.inbox.put(new Sample(null, 0, 0, rec.length, rec.seq, missed, copy));
      // emit() keeps a listener's exception away from this loop (LinkUser.emit).
      else this.emit('sample', new Sample(src, rec.pos, rec.offset, rec.length, rec.seq, missed, null));
    }
    if (this.rx === rx && !this.closed) rx.release(this.lastSeq);
    return did;
  }

  /** Busy-poll: deliver what the publisher published, synchronously; returns the number of samples (see Channel.poll). */
  poll(): number {
    if (this.closed) return 0;
    const before = this.counters.received;
    this.work();
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
    this.inbox.end();
    this.dropView();
    if (!linkGone && !this.endpoint.closed) this.sec.clearSlot(this.publisher);
    this.sec.release();
    this.emit('close', { reason });
  }
}
