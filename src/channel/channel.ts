// A message channel between two peers of an ivshmem link.
//
// Each direction is a byte ring of records (details/framing.ts) in the
// writer's own output section; the reader's consumer position lives in the
// reader's section (docs/spec-channel.md §4). Nothing is relayed by the
// broker: the data path is loads and stores on shared memory plus doorbells
// the reader asked for.
//
// Lifecycle (docs/spec-channel.md §6, §8): each peer publishes STATE =
// session | READY. When we see a new session of the peer we attach our ring
// to it at our current tail and report which of our messages it never
// confirmed; the peer starts reading there. Sequence numbers continue across
// peer restarts, so both sides can tell exactly which messages may not have
// arrived. Nothing is re-sent, so nothing is delivered twice.
import { ClosedError, PeerViolationError } from '../errors.js';
import type { IvshmemEndpoint } from '../ivshmem/endpoint.js';
import { CH_ROLE_CHANNEL, REC_DATA, REC_REQUEST, REC_RESPONSE } from './layout.js';
import { Message, type Loan } from './message.js';
import { ChannelRx } from './details/channel-rx.js';
import { ChannelTx } from './details/channel-tx.js';
import { Inbox } from './details/inbox.js';
import { OnePeerUser, otherPeer, type LinkUserOptions } from './details/link-user.js';
import { PeerSession } from './details/peer-session.js';
import { Requests } from './details/requests.js';
import { Sender } from './details/sender.js';

export { Message, Loan } from './message.js';

/** Peer, back-pressure, request timeout and wait mode of a channel. */
export interface ChannelOptions extends LinkUserOptions {
  /** The other peer's ID; default: the other one on a 2-peer link. */
  peer?: number;
  /** Messages queued for the async iterator before the channel stops reading the ring (back-pressure). Default 64. */
  highWaterMark?: number;
  /** Default timeout of request(), ms. Default 30000. */
  requestTimeoutMs?: number;
}

/** The peer (re)attached: its session and where the message sequence numbers continue. */
export interface PeerUpEvent {
  peer: number;
  /** The peer's session (changes when it restarts or resets). */
  session: number;
  /** Sequence number of the first message we will receive from this session. */
  firstSeq: number;
  /** Sequence number our next message will carry. */
  nextSeq: number;
}

/** The peer went away or restarted: which of our messages it never confirmed. */
export interface PeerDownEvent {
  peer: number;
  reason: string;
  /** Our messages whose arrival the peer never confirmed: they may or may not have been processed. */
  unconfirmed: { from: number; to: number } | null;
  /** Sequence number of the last message received from that session (0: none). */
  lastReceivedSeq: number;
}

/** A peer broke the channel protocol: reason code and message. */
export interface ViolationEvent {
  peer: number;
  reason: string;
  message: string;
}

/** The events a channel emits (message, peer-up, peer-down, violation, close). */
export interface ChannelEvents {
  message: [Message];
  'peer-up': [PeerUpEvent];
  'peer-down': [PeerDownEvent];
  violation: [ViolationEvent];
  /** An exception thrown by one of our listeners (see LinkUser.emit). */
  error: [unknown];
  close: [{ reason: string }];
}

/** Cumulative counters of a channel. */
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
  /** Exceptions thrown by listeners (reported as 'error' or a process warning). */
  listenerErrors: number;
}

/** A message channel between two peers of a link: each direction an SPSC byte ring in the writer's output section (docs/spec-channel.md). */
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
    listenerErrors: 0,
  };
  /** Reason the channel is latched broken (a peer violation), or null. Cleared when the peer starts a new session. */
  broken: string | null = null;

  private readonly requestTimeoutMs: number;
  private readonly ps: PeerSession;
  private readonly tx: ChannelTx;
  private connected = false;

  private readonly rx: ChannelRx;
  private paused = false;
  private readonly inbox: Inbox<Message>;
  private readonly requests = new Requests<Message>();

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
    const sender = new Sender(this.sec, endpoint, this.vector, this.counters, 'message');
    const host = {
      txReady: () => this.txReady(),
      violation: (reason: string, detail: string) => this.violation(reason, detail),
      checkOpen: () => this.checkOpen(),
      kick: () => this.pump.kick(),
    };
    this.tx = new ChannelTx(sender, this.sec, endpoint.id, peer, host, this.counters);
    this.rx = new ChannelRx(this.sec, endpoint, peer, this.vector, this.counters, {
      canDeliver: () => this.canDeliver(),
      deliver: (type, data, seq, corr) => this.deliver(type, data, seq, corr),
      violation: host.violation,
      isClosed: () => this.closed,
    });
    this.ps = new PeerSession(endpoint, peer, CH_ROLE_CHANNEL, 'peer', () => {
      this.rx.receiver = null;
      this.tx.dropView();
    });
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
    if (this.txReady()) this.tx.refreshHead();
  }

  /** Largest message this channel can send (half our ring). */
  get maxMessageSize(): number {
    return this.tx.sender.maxPayload;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** The peer's sequence numbers we have seen, and ours. */
  get sequence(): { nextSeq: number; confirmedSeq: number; lastReceivedSeq: number } {
    return { nextSeq: this.tx.sender.nextSeq, confirmedSeq: this.tx.confirmedSeq, lastReceivedSeq: this.rx.lastReceivedSeq };
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
    return this.tx.enqueue(REC_DATA, data, 0);
  }

  /** Send now if there is room and nothing queued; returns the sequence number, or 0 (nothing sent). */
  trySend(data: Uint8Array): number {
    return this.tx.trySend(REC_DATA, data, 0);
  }

  /** Reserve `size` bytes in the ring for a zero-copy send. */
  loanBuffer(size: number): Promise<Loan> {
    return this.tx.loan(size);
  }

  /** Same as loanBuffer (iceoryx2's name). */
  loan(size: number): Promise<Loan> {
    return this.tx.loan(size);
  }

  /** Send a request; resolves with the response message. */
  request(data: Uint8Array, opts: { timeoutMs?: number } = {}): Promise<Message> {
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    const { corr, response } = this.requests.open(timeoutMs, (c) => `request ${c} on channel to peer ${this.peer}`);
    this.tx.enqueue(REC_REQUEST, data, corr).catch((e: Error) => this.requests.fail(corr, e));
    return response;
  }

  /** Resolves when the peer has consumed everything sent so far. */
  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('channel is closed'));
    return this.tx.flush();
  }

  private checkOpen(): void {
    if (this.closed) throw new ClosedError(`channel to peer ${this.peer} is closed`);
  }

  private txReady(): boolean {
    return this.ps.session !== 0 && this.broken === null && !this.closed && this.ps.pw !== null;
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

  private deliver(type: number, data: Buffer, seq: number, corr: number): void {
    if (type === REC_RESPONSE) {
      if (!this.requests.settle(corr, new Message(data, seq, corr, false, null))) this.counters.unmatchedResponses++;
      return;
    }
    const msg = new Message(data, seq, corr, type === REC_REQUEST, this.tx);
    // emit() keeps a listener's exception away from this loop (LinkUser.emit).
    if (this.listenerCount('message') > 0) this.emit('message', msg);
    else this.inbox.put(msg);
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
    if (!this.rx.receiver && this.ps.session && this.ps.pw) this.attachRx();
    const did = this.ps.view !== null && this.rx.receive(this.ps.view);
    return this.tx.work() || did;
  }

  protected probe(): boolean {
    if (this.closed) return false;
    if (this.rx.pending && this.canDeliver()) return true;
    return this.tx.probe();
  }

  protected arm(on: boolean): boolean {
    if (this.closed) return false;
    this.rx.arm(on);
    this.tx.arm(on);
    return this.probe();
  }

  // --------------------------------------------------------------- lifecycle

  protected dropView(): void {
    this.ps.drop();
  }

  /** Look at the peer's STATE and header; attach to a new session. */
  protected sync(): void {
    if (this.closed) return;
    switch (this.ps.look()) {
      case 'down':
        this.peerDown(this.ps.downReason);
        return;
      case 'bad-header':
        // Not (yet) a channel section we can use; nothing of it is read.
        this.counters.badHeaders++;
        return;
      case 'none':
        return;
      case 'new': {
        const session = this.ps.header!.session;
        if (this.ps.session) this.peerDown('peer restarted');
        this.attachTx(session);
        break;
      }
      case 'same':
        this.tx.relink(this.ps.pw!);
        break;
    }
    if (!this.rx.receiver) this.attachRx();
  }

  /** Our half of the handshake (docs/spec-channel.md §8): offer our stream to the new session. */
  private attachTx(session: number): void {
    const p = this.peer;
    this.ps.session = session;
    this.broken = null;
    this.ps.brokenSession = 0;
    this.sec.clearSlot(p);
    this.tx.attach(this.ps.pw!, session);
    this.endpoint.ring(p, this.vector);
  }

  /** The peer's half of the handshake (details/channel-rx.ts); the peer is up once we read its stream. */
  private attachRx(): void {
    const { pw, header } = this.ps;
    if (!pw || !header || !this.ps.session) return;
    const firstSeq = this.rx.attach(pw, header, this.ps.session);
    if (!firstSeq) return;
    const p = this.peer;
    if (!this.connected) {
      this.connected = true;
      this.counters.peerUps++;
      this.emit('peer-up', { peer: p, session: this.ps.session, firstSeq, nextSeq: this.tx.sender.nextSeq });
    }
    this.endpoint.ring(p, this.vector);
    this.pump.kick();
  }

  private peerDown(reason: string): void {
    if (!this.ps.session && !this.connected) return;
    const unconfirmed = this.tx.detach();
    this.ps.session = 0;
    this.rx.receiver = null;
    this.connected = false;
    if (!this.closed && !this.endpoint.closed) this.sec.clearSlot(this.peer);
    this.counters.peerDowns++;
    this.emit('peer-down', { peer: this.peer, reason, unconfirmed, lastReceivedSeq: this.rx.lastReceivedSeq });
  }

  /** Latch broken: stop using the peer's section until it starts a new session. */
  private violation(reason: string, detail: string): false {
    const session = this.ps.session;
    this.counters.violations++;
    this.broken = reason;
    const message = `peer ${this.peer} of link ${this.endpoint.name} broke the channel protocol (${reason}): ${detail}; the channel is stalled until the peer restarts or calls reset()`;
    this.peerDown(`violation: ${reason}`);
    this.ps.brokenSession = session;
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
    this.peerDown('local reset');
    this.ps.brokenSession = 0;
    this.broken = null;
    this.sec.renew();
    this.tx.reset();
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
    this.tx.close(err);
    this.requests.rejectAll(err);
    this.inbox.end();
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
