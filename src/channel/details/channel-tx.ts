// A channel's sending side towards its one peer: the queue of sends that wait
// for room (never dropped), the one open loan, flush() waiters, and the
// peer's consumer position in our ring, validated each time it is read
// (docs/spec-channel.md §8: it only moves forward, never past our tail).
import { ClosedError } from '../../errors.js';
import { REC_ALIGN, REC_DATA, S_RX_HEAD, S_RX_SEQ, S_RX_SESSION, S_TX_ARMED, S_TX_START, S_TX_START_SEQ, S_TX_SESSION, S_TX_WAKE_AT, slotIndex } from '../layout.js';
import { Loan, type ChannelSink } from '../message.js';
import type { OwnSection } from './section.js';
import type { Sender } from './sender.js';

interface SendItem {
  kind: 'send';
  type: number;
  data: Uint8Array;
  corr: number;
  resolve: (seq: number) => void;
  reject: (e: Error) => void;
}
interface LoanItem {
  kind: 'loan';
  size: number;
  resolve: (l: Loan) => void;
  reject: (e: Error) => void;
}
interface CommitItem {
  kind: 'commit';
  length: number;
  resolve: (seq: number) => void;
  reject: (e: Error) => void;
}
type QueueItem = SendItem | LoanItem | CommitItem;

/** What the sending side needs from its channel. */
export interface TxHost {
  /** Attached to a live, unbroken session of the peer, and not closed. */
  txReady(): boolean;
  /** Latch a protocol violation of the peer; returns false. */
  violation(reason: string, detail: string): false;
  /** Throws ClosedError when the channel is closed. */
  checkOpen(): void;
  kick(): void;
}

export class ChannelTx implements ChannelSink {
  /** Last validated consumer position of the peer in our ring, and the last sequence number it confirmed. */
  head = 0;
  confirmedSeq = 0;
  /** The peer's section words while attached (its slot for us holds its consumer position). */
  private pw: Int32Array | null = null;
  private readonly queue: QueueItem[] = [];
  private openLoan: Loan | null = null;
  private flushWaiters: Array<{ seq: number; resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(
    readonly sender: Sender,
    private readonly sec: OwnSection,
    private readonly me: number,
    private readonly peer: number,
    private readonly host: TxHost,
    private readonly counters: { sent: number; bytesSent: number },
  ) {}

  /**
   * A new session of the peer (docs/spec-channel.md §8): our stream to it
   * starts at our current tail (a loan open across a restart keeps its bytes
   * there), with the next sequence number; everything before counts as
   * confirmed. The session word is written last.
   */
  attach(pw: Int32Array, session: number): void {
    this.pw = pw;
    const start = this.sender.writer.tail;
    this.head = start;
    this.confirmedSeq = this.sender.lastSeq;
    this.sec.setSlot(this.peer, S_TX_START, start);
    this.sec.setSlot(this.peer, S_TX_START_SEQ, this.sender.nextSeq);
    this.sec.setSlot(this.peer, S_TX_SESSION, session);
    this.sender.readers = [{ peer: this.peer, pw }];
  }

  /** The peer's section was mapped again for the same session: read its new mapping from now on. */
  relink(pw: Int32Array): void {
    if (this.pw === pw) return;
    this.pw = pw;
    this.sender.readers = [{ peer: this.peer, pw }];
  }

  /** The peer's session ended: returns our messages it never confirmed (they may or may not have been processed). */
  detach(): { from: number; to: number } | null {
    const last = this.sender.lastSeq;
    const unconfirmed = this.confirmedSeq !== last ? { from: (this.confirmedSeq + 1) >>> 0, to: last } : null;
    this.confirmedSeq = last;
    this.dropView();
    return unconfirmed;
  }

  /** The peer's mapping is gone: never read it again. */
  dropView(): void {
    this.pw = null;
    this.sender.readers = [];
  }

  /** A new session of our own: the loan is void, the ring empty, numbering from 1. */
  reset(): void {
    if (this.openLoan) {
      this.openLoan = null;
      this.sender.writer.abort();
    }
    this.sender.reset();
    this.confirmedSeq = 0;
  }

  /** Reject everything waiting. */
  close(err: Error): void {
    for (const q of this.queue.splice(0)) q.reject(err);
    for (const f of this.flushWaiters.splice(0)) f.reject(err);
    this.openLoan = null;
    this.dropView();
  }

  private get idle(): boolean {
    return this.queue.length === 0 && this.openLoan === null;
  }

  /** Send now if there is room and nothing waits before it; the sequence number, or 0 (not sent). */
  trySend(type: number, data: Uint8Array, corr: number): number {
    this.sender.checkSize(data.byteLength);
    if (!this.idle || !this.host.txReady()) return 0;
    return this.write(type, data, corr);
  }

  enqueue(type: number, data: Uint8Array, corr: number): Promise<number> {
    try {
      this.host.checkOpen();
      this.sender.checkSize(data.byteLength);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.idle && this.host.txReady()) {
      const seq = this.write(type, data, corr);
      if (seq) return Promise.resolve(seq);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'send', type, data, corr, resolve, reject });
      this.host.kick();
    });
  }

  loan(size: number): Promise<Loan> {
    try {
      this.host.checkOpen();
      this.sender.checkSize(size);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'loan', size, resolve, reject });
      if (!this.drain() || this.queue.length) this.host.kick();
    });
  }

  commitLoan(l: Loan, length: number): Promise<number> {
    if (l !== this.openLoan) return Promise.reject(new ClosedError('the loan is no longer valid (channel closed or reset)'));
    if (this.host.txReady() && this.queue.length === 0) return Promise.resolve(this.publish(REC_DATA, length, 0));
    // The peer went away while the loan was open: keep the bytes in place and
    // publish them first when it is back, so the message is neither lost nor reordered.
    return new Promise((resolve, reject) => {
      this.queue.unshift({ kind: 'commit', length, resolve, reject });
      this.host.kick();
    });
  }

  abortLoan(l: Loan): void {
    if (l !== this.openLoan) return;
    this.openLoan = null;
    this.sender.writer.abort();
    this.host.kick();
  }

  /** Resolves when the peer has consumed everything sent so far. */
  flush(): Promise<void> {
    const seq = this.sender.lastSeq;
    if (this.queue.length === 0 && this.confirmedSeq === seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ seq, resolve, reject });
      this.host.kick();
    });
  }

  /** Refresh the peer's consumer position in our ring (validated). Returns false on a violation. */
  refreshHead(): boolean {
    const pw = this.pw;
    if (!pw) return false;
    const me = this.me;
    if (Atomics.load(pw, slotIndex(me, S_RX_SESSION)) >>> 0 !== this.sec.session) return true; // not attached yet: head = stream start
    const h = Atomics.load(pw, slotIndex(me, S_RX_HEAD)) >>> 0;
    const s = Atomics.load(pw, slotIndex(me, S_RX_SEQ)) >>> 0;
    const tail = this.sender.writer.tail;
    // The consumer may only move forward, and never past what we published.
    if (h % REC_ALIGN !== 0 || ((h - this.head) >>> 0) > ((tail - this.head) >>> 0)) {
      return this.host.violation('consumer-head-out-of-range', `consumer position ${h} is outside ${this.head}..${tail}`);
    }
    const last = this.sender.lastSeq;
    if (((s - this.confirmedSeq) >>> 0) > ((last - this.confirmedSeq) >>> 0)) {
      return this.host.violation('consumer-seq-out-of-range', `consumer sequence ${s} is outside ${this.confirmedSeq}..${last}`);
    }
    this.head = h;
    this.confirmedSeq = s;
    return true;
  }

  /** Claim, copy, commit. Returns the sequence number or 0 when full. */
  private write(type: number, data: Uint8Array, corr: number): number {
    const n = data.byteLength;
    let off = this.sender.claim(n, this.head);
    if (off < 0) {
      if (!this.refreshHead()) return 0;
      off = this.sender.claim(n, this.head);
      if (off < 0) return 0;
    }
    this.sender.writer.write(off, data);
    return this.publish(type, n, corr);
  }

  private publish(type: number, length: number, corr: number): number {
    const seq = this.sender.commit(type, length, corr);
    this.openLoan = null;
    this.counters.sent++;
    this.counters.bytesSent += length;
    return seq;
  }

  /** Move queued sends into the ring while there is room. Returns true if something moved. */
  private drain(): boolean {
    let did = false;
    while (this.queue.length && this.host.txReady()) {
      const item = this.queue[0]!;
      if (item.kind === 'commit') {
        this.queue.shift();
        item.resolve(this.publish(REC_DATA, item.length, 0));
        did = true;
        continue;
      }
      if (this.openLoan) break;
      if (item.kind === 'send') {
        const seq = this.write(item.type, item.data, item.corr);
        if (!seq) break;
        this.queue.shift();
        item.resolve(seq);
      } else {
        let off = this.sender.claim(item.size, this.head);
        if (off < 0 && this.refreshHead()) off = this.sender.claim(item.size, this.head);
        if (off < 0) break;
        this.queue.shift();
        const l = new Loan(this.sec.bytes.subarray(off, off + item.size), this);
        this.openLoan = l;
        item.resolve(l);
      }
      did = true;
    }
    return did;
  }

  /** flush() waiters, then queued sends. True if anything happened. */
  work(): boolean {
    let did = false;
    // Refresh for flush() before drain(), so drain() sees the newest consumer position.
    if (this.flushWaiters.length && this.refreshHead()) {
      const still: typeof this.flushWaiters = [];
      for (const f of this.flushWaiters) {
        if (((this.confirmedSeq - f.seq) >>> 0) < 0x80000000) f.resolve();
        else still.push(f);
      }
      if (still.length !== this.flushWaiters.length) did = true;
      this.flushWaiters = still;
    }
    if (this.queue.length) did = this.drain() || did;
    return did;
  }

  /** Has the peer freed space (or confirmed) that queued work or flush() waits for? */
  probe(): boolean {
    if ((this.queue.length === 0 && this.flushWaiters.length === 0) || !this.pw || !this.host.txReady()) return false;
    if (this.queue[0]?.kind === 'commit') return true;
    return Atomics.load(this.pw, slotIndex(this.me, S_RX_HEAD)) >>> 0 !== this.head;
  }

  /**
   * Our wake request for space (docs/spec-channel.md §7), armed only while
   * something waits for it. No refreshHead() here: probe() compares the
   * peer's position with the one drain() last failed with; refreshing
   * without draining would hide free space.
   */
  arm(on: boolean): void {
    const wantSpace = on && (this.queue.length > 0 || this.flushWaiters.length > 0);
    this.sec.setSlot(this.peer, S_TX_WAKE_AT, this.head);
    this.sec.setSlot(this.peer, S_TX_ARMED, wantSpace ? 1 : 0);
  }
}
