// A message channel between two peers of an ivshmem link (issue 5, item 1).
//
// Each direction is an SPSC byte ring (ring.ts) in the writer's own output
// section; the reader's consumer position lives in the reader's section
// (layout.ts slots). Nothing is relayed by the broker: the data path is loads
// and stores on shared memory plus doorbells the reader asked for.
//
// Lifecycle (ivshmem-v2-notes.md a.5 State register; anchors.md 1.10 item 5):
// each peer publishes STATE = session | READY. When we see a new session of
// the peer we attach our ring to it at our current tail (S_TX_START) and
// report which of our messages it never confirmed; the peer starts reading
// there. Sequence numbers continue across peer restarts, so both sides can
// tell exactly which messages may not have arrived. Nothing is re-sent, so
// nothing is delivered twice.
import { ClosedError, InvalidArgumentError, PeerViolationError, TimeoutError } from '../errors.js';
import { PEER_OUTPUT_VIEW, type IvshmemEndpoint } from '../ivshmem/endpoint.js';
import {
  CH_ROLE_CHANNEL,
  CH_STATE_PHASE_MASK,
  CH_STATE_READY,
  needEvent,
  readPeerHeader,
  REC_ALIGN,
  REC_DATA,
  REC_REQUEST,
  REC_RESPONSE,
  S_RX_ARMED,
  S_RX_HEAD,
  S_RX_SEQ,
  S_RX_SESSION,
  S_RX_WAKE_AT,
  S_TX_ARMED,
  S_TX_SESSION,
  S_TX_START,
  S_TX_START_SEQ,
  S_TX_WAKE_AT,
  slotIndex,
  words,
  type PeerHeader,
} from './layout.js';
import { Inbox, OnePeerUser, otherPeer, type LinkUserOptions } from './link-user.js';
import { newRecordView, RingReader, RingWriter } from './ring.js';

export interface ChannelOptions extends LinkUserOptions {
  /** The other peer's ID; default: the other one on a 2-peer link. */
  peer?: number;
  /** Messages queued for the async iterator before the channel stops reading the ring (back-pressure). Default 64. */
  highWaterMark?: number;
  /** Default timeout of request(), ms. Default 30000. */
  requestTimeoutMs?: number;
}

export interface PeerUpEvent {
  peer: number;
  /** The peer's session (changes when it restarts or resets). */
  session: number;
  /** Sequence number of the first message we will receive from this session. */
  firstSeq: number;
  /** Sequence number our next message will carry. */
  nextSeq: number;
}

export interface PeerDownEvent {
  peer: number;
  reason: string;
  /** Our messages whose arrival the peer never confirmed: they may or may not have been processed. */
  unconfirmed: { from: number; to: number } | null;
  /** Sequence number of the last message received from that session (0: none). */
  lastReceivedSeq: number;
}

export interface ViolationEvent {
  peer: number;
  reason: string;
  message: string;
}

export interface ChannelEvents {
  message: [Message];
  'peer-up': [PeerUpEvent];
  'peer-down': [PeerDownEvent];
  violation: [ViolationEvent];
  close: [{ reason: string }];
}

export interface ChannelCounters {
  sent: number;
  received: number;
  bytesSent: number;
  bytesReceived: number;
  doorbellsRung: number;
  violations: number;
  unmatchedResponses: number;
  peerUps: number;
  peerDowns: number;
  badHeaders: number;
}

/** A received message. `data` is a private copy: the ring slot is released at once. */
export class Message {
  constructor(
    readonly data: Buffer,
    readonly seq: number,
    readonly correlationId: number,
    readonly isRequest: boolean,
    private readonly channel: Channel | null,
  ) {}
  /** Answer a request (resolves like send()). */
  respond(data: Uint8Array): Promise<number> {
    if (!this.isRequest || !this.channel) {
      return Promise.reject(new InvalidArgumentError(`message ${this.seq} is not a request; only messages from request() can be answered`));
    }
    return this.channel.enqueue(REC_RESPONSE, data, this.correlationId);
  }
}

/** A zero-copy send: write into `buffer` (our own section), then commit(). */
export class Loan {
  private done = false;
  constructor(
    /** Writable bytes inside the ring. Do not keep it after commit()/abort() or after the channel closes. */
    readonly buffer: Buffer,
    private readonly channel: Channel,
  ) {}
  /** Publish the first `length` bytes (default all). Resolves with the message's sequence number. */
  commit(length = this.buffer.byteLength): Promise<number> {
    if (this.done) return Promise.reject(new InvalidArgumentError('loan was already committed or aborted'));
    if (!Number.isInteger(length) || length < 0 || length > this.buffer.byteLength) {
      return Promise.reject(new InvalidArgumentError(`commit length ${length} must be 0..${this.buffer.byteLength}`));
    }
    this.done = true;
    return this.channel.commitLoan(this, length);
  }
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.channel.abortLoan(this);
  }
}

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

interface Pending {
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class Channel extends OnePeerUser<ChannelEvents> {
  readonly peer: number;
  readonly counters: ChannelCounters = {
    sent: 0,
    received: 0,
    bytesSent: 0,
    bytesReceived: 0,
    doorbellsRung: 0,
    violations: 0,
    unmatchedResponses: 0,
    peerUps: 0,
    peerDowns: 0,
    badHeaders: 0,
  };
  /** Reason the channel is latched broken (a peer violation), or null. Cleared when the peer starts a new session. */
  broken: string | null = null;

  private readonly writer: RingWriter;
  private readonly requestTimeoutMs: number;
  private readonly rec = newRecordView();

  // Peer side (everything here was validated when read).
  private view: Uint8Array | null = null;
  private pw: Int32Array | null = null;
  private peerHdr: PeerHeader | null = null;
  private peerSession = 0;
  private brokenSession = 0;
  private reader: RingReader | null = null;
  private connected = false;

  // Our direction.
  private nextSeq = 1;
  private confirmedSeq = 0;
  private txStart = 0;
  /** Last validated consumer position of the peer in our ring. */
  private head = 0;
  private readonly queue: QueueItem[] = [];
  private openLoan: Loan | null = null;
  private loanOffset = 0;
  private flushWaiters: Array<{ seq: number; resolve: () => void; reject: (e: Error) => void }> = [];

  // Receive side.
  private lastReceivedSeq = 0;
  private paused = false;
  private readonly inbox: Inbox<Message>;
  private nextCorr = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(endpoint: IvshmemEndpoint, opts: ChannelOptions = {}) {
    const what = `channel on peer ${endpoint.id} of link ${endpoint.name}`;
    // Options are checked before super() touches the endpoint's section.
    const peer = otherPeer(endpoint, opts.peer, 'peer', what);
    super(endpoint, opts, what);
    this.peer = peer;
    this.inbox = new Inbox(opts.highWaterMark ?? 64, () => this.pump.kick(), () => this.closed);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30000;
    this.sec.claimRing(CH_ROLE_CHANNEL, what);
    this.sec.acquire();
    this.sec.renew();
    this.writer = new RingWriter(this.sec.bytes, this.sec.w, this.sec.geo.ringOffset, this.sec.geo.ringSize);
    this.writer.reset(0);
    this.listen('message', () => {
      this.sync();
      this.pump.start();
    });
  }

  protected get remote(): number {
    return this.peer;
  }

  protected lost(reason: string): void {
    this.peerDown(reason);
  }

  protected recheck(): void {
    this.sync();
    if (this.txReady()) this.refreshHead();
  }

  /** Largest message this channel can send (half our ring). */
  get maxMessageSize(): number {
    return this.writer.maxPayload;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** The peer's sequence numbers we have seen, and ours. */
  get sequence(): { nextSeq: number; confirmedSeq: number; lastReceivedSeq: number } {
    return { nextSeq: this.nextSeq, confirmedSeq: this.confirmedSeq, lastReceivedSeq: this.lastReceivedSeq };
  }

  /** Resolves when the peer is attached (immediately if it is). */
  ready(): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.closed) return Promise.reject(new ClosedError('channel is closed'));
    return new Promise((resolve, reject) => {
      const up = () => {
        this.off('close', down);
        resolve();
      };
      const down = () => {
        this.off('peer-up', up);
        reject(new ClosedError('channel closed before the peer attached'));
      };
      this.once('peer-up', up);
      this.once('close', down);
    });
  }

  // ---------------------------------------------------------------- sending

  /**
   * Send a copy of `data`. Resolves with the message's sequence number once it
   * is in the ring; waits (never drops) while the ring is full or the peer is
   * not attached. Messages are delivered in order, with their boundaries.
   */
  send(data: Uint8Array): Promise<number> {
    return this.enqueue(REC_DATA, data, 0);
  }

  /** Send now if there is room and nothing queued; returns the sequence number, or 0 (nothing sent). */
  trySend(data: Uint8Array): number {
    this.checkSize(data.byteLength);
    if (this.queue.length || this.openLoan || !this.txReady()) return 0;
    return this.write(REC_DATA, data, 0);
  }

  /** Reserve `size` bytes in the ring for a zero-copy send. */
  loanBuffer(size: number): Promise<Loan> {
    try {
      this.checkOpen();
      this.checkSize(size);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'loan', size, resolve, reject });
      if (!this.drain() || this.queue.length) this.pump.kick();
    });
  }

  /** Same as loanBuffer (iceoryx2's name). */
  loan(size: number): Promise<Loan> {
    return this.loanBuffer(size);
  }

  /** Send a request; resolves with the response message. */
  request(data: Uint8Array, opts: { timeoutMs?: number } = {}): Promise<Message> {
    const corr = this.nextCorr;
    this.nextCorr = this.nextCorr >= 0xffffffff ? 1 : this.nextCorr + 1;
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(corr);
        reject(new TimeoutError(`request ${corr} on channel to peer ${this.peer} got no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(corr, { resolve, reject, timer });
      this.enqueue(REC_REQUEST, data, corr).catch((e: Error) => {
        clearTimeout(timer);
        this.pending.delete(corr);
        reject(e);
      });
    });
  }

  /** Resolves when the peer has consumed everything sent so far. */
  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('channel is closed'));
    const seq = (this.nextSeq - 1) >>> 0;
    if (this.queue.length === 0 && this.confirmedSeq === seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ seq, resolve, reject });
      this.pump.kick();
    });
  }

  /** @internal */
  enqueue(type: number, data: Uint8Array, corr: number): Promise<number> {
    try {
      this.checkOpen();
      this.checkSize(data.byteLength);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.queue.length === 0 && !this.openLoan && this.txReady()) {
      const seq = this.write(type, data, corr);
      if (seq) return Promise.resolve(seq);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'send', type, data, corr, resolve, reject });
      this.pump.kick();
    });
  }

  /** @internal */
  commitLoan(l: Loan, length: number): Promise<number> {
    if (l !== this.openLoan) return Promise.reject(new ClosedError('the loan is no longer valid (channel closed or reset)'));
    if (this.txReady() && this.queue.length === 0) {
      return Promise.resolve(this.publish(REC_DATA, length, 0));
    }
    // The peer went away while the loan was open: keep the bytes in place and
    // publish them first when it is back, so the message is neither lost nor reordered.
    return new Promise((resolve, reject) => {
      this.queue.unshift({ kind: 'commit', length, resolve, reject });
      this.pump.kick();
    });
  }

  /** @internal */
  abortLoan(l: Loan): void {
    if (l !== this.openLoan) return;
    this.openLoan = null;
    this.writer.abort();
    this.pump.kick();
  }

  private checkOpen(): void {
    if (this.closed) throw new ClosedError(`channel to peer ${this.peer} is closed`);
  }

  private checkSize(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.writer.maxPayload) {
      throw new InvalidArgumentError(
        `message of ${n} bytes exceeds this channel's limit of ${this.writer.maxPayload} bytes (half the ring); start the link with a larger --output-size`);
    }
  }

  private txReady(): boolean {
    return this.peerSession !== 0 && this.broken === null && !this.closed && this.pw !== null;
  }

  /** Refresh the peer's consumer position in our ring (validated). Returns false on a violation. */
  private refreshHead(): boolean {
    const pw = this.pw;
    if (!pw) return false;
    const me = this.endpoint.id;
    if (Atomics.load(pw, slotIndex(me, S_RX_SESSION)) >>> 0 !== this.sec.session) return true; // not attached yet: head = txStart
    const h = Atomics.load(pw, slotIndex(me, S_RX_HEAD)) >>> 0;
    const s = Atomics.load(pw, slotIndex(me, S_RX_SEQ)) >>> 0;
    const tail = this.writer.tail;
    // The consumer may only move forward, and never past what we published.
    if (h % REC_ALIGN !== 0 || ((h - this.head) >>> 0) > ((tail - this.head) >>> 0)) return this.violation('consumer-head-out-of-range', `consumer position ${h} is outside ${this.head}..${tail}`);
    const last = (this.nextSeq - 1) >>> 0;
    if (((s - this.confirmedSeq) >>> 0) > ((last - this.confirmedSeq) >>> 0)) return this.violation('consumer-seq-out-of-range', `consumer sequence ${s} is outside ${this.confirmedSeq}..${last}`);
    this.head = h;
    this.confirmedSeq = s;
    return true;
  }

  /** Claim, copy, commit. Returns the sequence number or 0 when full. */
  private write(type: number, data: Uint8Array, corr: number): number {
    let off = this.writer.claim(data.byteLength, this.head);
    if (off < 0) {
      if (!this.refreshHead()) return 0;
      off = this.writer.claim(data.byteLength, this.head);
      if (off < 0) return 0;
    }
    this.writer.write(off, data);
    return this.publish(type, data.byteLength, corr);
  }

  private publish(type: number, length: number, corr: number): number {
    const seq = this.nextSeq;
    this.nextSeq = (seq + 1) >>> 0 || 1;
    const old = this.writer.tail;
    const tail = this.writer.commit(type, length, seq, corr);
    this.openLoan = null;
    this.counters.sent++;
    this.counters.bytesSent += length;
    // Ring only if the reader asked for it and this move crosses its wake point.
    const pw = this.pw;
    if (pw) {
      const me = this.endpoint.id;
      if (Atomics.load(pw, slotIndex(me, S_RX_ARMED)) === 1 && needEvent(Atomics.load(pw, slotIndex(me, S_RX_WAKE_AT)) >>> 0, tail, old)) {
        this.counters.doorbellsRung++;
        this.endpoint.ring(this.peer, this.vector);
      }
    }
    return seq;
  }

  /** Move queued sends into the ring while there is room. Returns true if something moved. */
  private drain(): boolean {
    let did = false;
    while (this.queue.length && this.txReady()) {
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
        let off = this.writer.claim(item.size, this.head);
        if (off < 0 && this.refreshHead()) off = this.writer.claim(item.size, this.head);
        if (off < 0) break;
        this.queue.shift();
        const l = new Loan(this.sec.bytes.subarray(off, off + item.size), this);
        this.openLoan = l;
        this.loanOffset = off;
        item.resolve(l);
      }
      did = true;
    }
    return did;
  }

  // -------------------------------------------------------------- receiving

  /** Stop reading the ring: the sender's send() waits once the ring is full. */
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.pump.kick();
  }
  get isPaused(): boolean {
    return this.paused;
  }

  private canDeliver(): boolean {
    return !this.paused && (this.inbox.hasRoom || this.listenerCount('message') > 0);
  }

  /** Read what the peer published. Returns true if anything was consumed. */
  private receive(): boolean {
    const r = this.reader;
    if (!r || !this.canDeliver()) return false;
    const err = r.loadTail();
    if (err) return this.violation(err, `tail ${r.peekTail()} against consumer position ${r.pos}`) && false;
    if (!r.available) return false;
    const src = this.view!;
    const start = r.pos;
    let lastPublished = start;
    // Bounded: at most the ring's worth of records per call.
    let budget = r.size >>> 4;
    let released = 0;
    while (r.available && budget-- > 0 && this.reader === r && this.canDeliver()) {
      const e = r.parse(this.rec);
      if (e) return this.violation(e, `record at position ${r.pos}`) && false;
      const rec = this.rec;
      if (rec.seq !== r.seq) return this.violation('seq-mismatch', `record at position ${rec.pos} has sequence ${rec.seq}, expected ${r.seq}`) && false;
      if (rec.type === REC_RESPONSE && rec.corr === 0) return this.violation('bad-correlation', `response ${rec.seq} without correlation ID`) && false;
      if (rec.type === REC_REQUEST && rec.corr === 0) return this.violation('bad-correlation', `request ${rec.seq} without correlation ID`) && false;
      // Copy out before use (the peer could change the bytes under us).
      const data = Buffer.allocUnsafe(rec.length);
      data.set(src.subarray(rec.offset, rec.offset + rec.length));
      r.pos = rec.end;
      r.seq = (r.seq + 1) >>> 0;
      this.lastReceivedSeq = rec.seq;
      this.counters.received++;
      this.counters.bytesReceived += rec.length;
      released += rec.end - rec.pos;
      if (released >= r.size >>> 2) {
        this.releaseRx(r, lastPublished);
        lastPublished = r.pos;
        released = 0;
      }
      this.deliver(rec.type, data, rec.seq, rec.corr);
    }
    if (this.reader === r && !this.closed) this.releaseRx(r, lastPublished);
    return true;
  }

  /** Publish our consumer position (frees ring space) and ring the writer if it waits for it. */
  private releaseRx(r: RingReader, old: number): void {
    const me = this.endpoint.id;
    this.sec.setSlot(this.peer, S_RX_SEQ, (r.seq - 1) >>> 0);
    this.sec.setSlot(this.peer, S_RX_HEAD, r.pos);
    const pw = this.pw;
    if (pw && Atomics.load(pw, slotIndex(me, S_TX_ARMED)) === 1 && needEvent(Atomics.load(pw, slotIndex(me, S_TX_WAKE_AT)) >>> 0, r.pos, old)) {
      this.counters.doorbellsRung++;
      this.endpoint.ring(this.peer, this.vector);
    }
  }

  private deliver(type: number, data: Buffer, seq: number, corr: number): void {
    if (type === REC_RESPONSE) {
      const p = this.pending.get(corr);
      if (!p) {
        this.counters.unmatchedResponses++;
        return;
      }
      this.pending.delete(corr);
      clearTimeout(p.timer);
      p.resolve(new Message(data, seq, corr, false, null));
      return;
    }
    const msg = new Message(data, seq, corr, type === REC_REQUEST, this);
    if (this.listenerCount('message') > 0) {
      try {
        this.emit('message', msg);
      } catch (err) {
        // A throwing listener must not corrupt the channel; report it the Node way.
        queueMicrotask(() => {
          throw err;
        });
      }
      return;
    }
    this.inbox.put(msg);
  }

  /** Receive one message (for code that prefers pull to events). */
  async next(): Promise<Message> {
    const r = await this[Symbol.asyncIterator]().next();
    if (r.done) throw new ClosedError(`channel to peer ${this.peer} is closed`);
    return r.value;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    return this.inbox.iterator();
  }

  /**
   * Busy-poll (Aeron's `poll()`): do the channel's pending work now,
   * synchronously: read what the peer published ('message' listeners run
   * before this returns) and move queued sends into the ring. Returns the
   * number of messages received. For a dedicated loop that spins without the
   * event loop's turn in between (the lowest latency this library offers);
   * such a loop must still yield now and then (`await setImmediate`), because
   * doorbells, peer-up/down and promise continuations are event-loop work.
   */
  poll(): number {
    if (this.closed) return 0;
    const before = this.counters.received;
    this.work();
    return this.counters.received - before;
  }

  // --------------------------------------------------------------- the pump

  protected work(): boolean {
    if (this.closed) return false;
    if (!this.reader && this.peerSession && this.pw) this.attachRx();
    let did = this.receive();
    // Refresh for flush() before drain(), so drain() sees the newest consumer position.
    if (this.flushWaiters.length && this.refreshHead()) {
      const still: typeof this.flushWaiters = [];
      for (const f of this.flushWaiters) if (((this.confirmedSeq - f.seq) >>> 0) < 0x80000000) f.resolve();
      else still.push(f);
      if (still.length !== this.flushWaiters.length) did = true;
      this.flushWaiters = still;
    }
    if (this.queue.length) did = this.drain() || did;
    return did;
  }

  protected probe(): boolean {
    if (this.closed) return false;
    const r = this.reader;
    if (r && r.peekTail() !== r.pos && this.canDeliver()) return true;
    if ((this.queue.length || this.flushWaiters.length) && this.pw && this.txReady()) {
      const h = Atomics.load(this.pw, slotIndex(this.endpoint.id, S_RX_HEAD)) >>> 0;
      if (h !== this.head) return true;
      if (this.queue[0]?.kind === 'commit') return true;
    }
    return false;
  }

  protected arm(on: boolean): boolean {
    if (this.closed) return false;
    // No refreshHead() here: probe() compares the peer's position with the one
    // drain() last failed with; refreshing without draining would hide free space.
    const p = this.peer;
    const r = this.reader;
    if (r) {
      this.sec.setSlot(p, S_RX_WAKE_AT, r.pos);
      this.sec.setSlot(p, S_RX_ARMED, on ? 1 : 0);
    }
    const wantSpace = on && (this.queue.length > 0 || this.flushWaiters.length > 0);
    this.sec.setSlot(p, S_TX_WAKE_AT, this.head);
    this.sec.setSlot(p, S_TX_ARMED, wantSpace ? 1 : 0);
    return this.probe();
  }

  // --------------------------------------------------------------- lifecycle

  protected dropView(): void {
    this.view = null;
    this.pw = null;
    this.reader = null;
  }

  /** Look at the peer's STATE and header; attach to a new session. */
  protected sync(): void {
    if (this.closed) return;
    const ep = this.endpoint;
    const st = ep.peerState(this.peer) >>> 0;
    if (st === 0 || (st & CH_STATE_PHASE_MASK) !== CH_STATE_READY) {
      if (this.peerSession) this.peerDown(st === 0 ? 'peer reset its state' : `peer state 0x${st.toString(16)}`);
      return;
    }
    const view = ep[PEER_OUTPUT_VIEW](this.peer);
    if (!view) return;
    if (view !== this.view) {
      this.view = view;
      this.pw = words(view, `output section of peer ${this.peer}`);
      this.reader = null;
    }
    const hdr = readPeerHeader(this.pw!, view.byteLength, ep.maxPeers);
    if (typeof hdr === 'string') {
      // Not (yet) a channel section we can use; nothing of it is read.
      this.counters.badHeaders++;
      return;
    }
    const stSession = (st & ~CH_STATE_PHASE_MASK) >>> 0;
    if (hdr.session !== stSession) return; // mid-reset: wait for the STATE that matches
    if (hdr.role !== CH_ROLE_CHANNEL) return;
    if (hdr.session === this.brokenSession) return; // latched: wait for a new session
    if (hdr.session !== this.peerSession) {
      if (this.peerSession) this.peerDown('peer restarted');
      this.attachTx(hdr);
    }
    if (!this.reader) this.attachRx();
  }

  private attachTx(hdr: PeerHeader): void {
    const p = this.peer;
    this.peerHdr = hdr;
    this.peerSession = hdr.session;
    this.broken = null;
    this.brokenSession = 0;
    this.sec.clearSlot(p);
    // A loan open across the restart keeps its bytes at the tail; the stream starts there.
    this.txStart = this.writer.tail;
    this.head = this.txStart;
    this.confirmedSeq = (this.nextSeq - 1) >>> 0;
    this.sec.setSlot(p, S_TX_START, this.txStart);
    this.sec.setSlot(p, S_TX_START_SEQ, this.nextSeq);
    // The session last: the peer reads it, then the start, then the session again.
    this.sec.setSlot(p, S_TX_SESSION, hdr.session);
    this.endpoint.ring(p, this.vector);
  }

  private attachRx(): void {
    const pw = this.pw;
    const hdr = this.peerHdr;
    if (!pw || !hdr) return;
    const me = this.endpoint.id;
    const my = this.sec.session;
    if (Atomics.load(pw, slotIndex(me, S_TX_SESSION)) >>> 0 !== my) return; // the peer has not seen us yet
    const start = Atomics.load(pw, slotIndex(me, S_TX_START)) >>> 0;
    const startSeq = Atomics.load(pw, slotIndex(me, S_TX_START_SEQ)) >>> 0;
    if (Atomics.load(pw, slotIndex(me, S_TX_SESSION)) >>> 0 !== my) return;
    const r = new RingReader(pw, hdr.ringOffset, hdr.ringSize, start, startSeq, [REC_DATA, REC_REQUEST, REC_RESPONSE]);
    if (start % REC_ALIGN !== 0 || startSeq === 0) {
      this.violation('bad-stream-start', `stream start ${start} / sequence ${startSeq}`);
      return;
    }
    const e = r.loadTail();
    if (e) {
      this.violation(e, `tail at attach, stream start ${start}`);
      return;
    }
    const p = this.peer;
    this.sec.setSlot(p, S_RX_HEAD, start);
    this.sec.setSlot(p, S_RX_SEQ, (startSeq - 1) >>> 0);
    this.sec.setSlot(p, S_RX_ARMED, 0);
    this.sec.setSlot(p, S_RX_SESSION, this.peerSession);
    this.reader = r;
    this.lastReceivedSeq = (startSeq - 1) >>> 0;
    if (!this.connected) {
      this.connected = true;
      this.counters.peerUps++;
      this.emit('peer-up', { peer: p, session: this.peerSession, firstSeq: startSeq, nextSeq: this.nextSeq });
    }
    this.endpoint.ring(p, this.vector);
    this.pump.kick();
  }

  private peerDown(reason: string): void {
    if (!this.peerSession && !this.connected) return;
    const last = (this.nextSeq - 1) >>> 0;
    const unconfirmed = this.confirmedSeq !== last ? { from: (this.confirmedSeq + 1) >>> 0, to: last } : null;
    const wasUp = this.connected || this.peerSession !== 0;
    this.peerSession = 0;
    this.peerHdr = null;
    this.reader = null;
    this.connected = false;
    this.confirmedSeq = last;
    if (!this.closed && !this.endpoint.closed) this.sec.clearSlot(this.peer);
    if (wasUp) {
      this.counters.peerDowns++;
      this.emit('peer-down', { peer: this.peer, reason, unconfirmed, lastReceivedSeq: this.lastReceivedSeq });
    }
  }

  /** Latch broken: stop using the peer's section until it starts a new session. */
  private violation(reason: string, detail: string): false {
    const session = this.peerSession;
    this.counters.violations++;
    this.broken = reason;
    const message = `peer ${this.peer} of link ${this.endpoint.name} broke the channel protocol (${reason}): ${detail}; the channel is stalled until the peer restarts or calls reset()`;
    this.peerDown(`violation: ${reason}`);
    this.brokenSession = session;
    this.broken = reason;
    this.emit('violation', { peer: this.peer, reason, message });
    return false;
  }

  /** The error object for the last violation (for code that wants to throw it). */
  get violationError(): PeerViolationError | null {
    return this.broken ? new PeerViolationError(this.broken, `channel to peer ${this.peer} is broken: ${this.broken}`) : null;
  }

  /**
   * Re-handshake: start a new session of our own section. The peer sees a
   * restart of ours (its unconfirmed messages are reported), and a broken
   * latch on our side is cleared.
   */
  reset(): void {
    this.checkOpen();
    if (this.openLoan) {
      this.openLoan = null;
      this.writer.abort();
    }
    this.peerDown('local reset');
    this.brokenSession = 0;
    this.broken = null;
    this.sec.renew();
    this.writer.reset(0);
    this.nextSeq = 1;
    this.confirmedSeq = 0;
    this.dropView();
    this.sync();
    this.pump.kick();
  }

  /** Close the channel; pending sends and requests reject with ClosedError. */
  close(): void {
    this.shutdown('closed', false);
  }

  protected shutdown(reason: string, linkGone: boolean): void {
    if (!this.detach()) return;
    const ep = this.endpoint;
    const err = new ClosedError(`channel to peer ${this.peer} closed (${reason})`);
    for (const q of this.queue.splice(0)) q.reject(err);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const f of this.flushWaiters.splice(0)) f.reject(err);
    this.inbox.end();
    this.openLoan = null;
    this.dropView();
    this.connected = false;
    if (!linkGone && !ep.closed) {
      this.sec.releaseRing();
      try {
        ep.setState(0);
      } catch {
        /* link closing */
      }
    }
    this.sec.release();
    this.emit('close', { reason });
  }
}
