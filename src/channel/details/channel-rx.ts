// A channel's receiving side from its one peer: the peer's half of the
// handshake (where its stream to us starts, docs/spec-channel.md §8) and the
// receive loop, which validates every record (§5: framing, consecutive
// sequence numbers, correlation IDs) and copies each payload out before
// anything uses it.
import type { IvshmemEndpoint } from '../../ivshmem/endpoint.js';
import {
  REC_ALIGN,
  REC_DATA,
  REC_REQUEST,
  REC_RESPONSE,
  S_RX_ARMED,
  S_RX_HEAD,
  S_RX_SEQ,
  S_RX_SESSION,
  S_TX_SESSION,
  S_TX_START,
  S_TX_START_SEQ,
  slotIndex,
  type PeerHeader,
} from '../layout.js';
import { RingReader } from './framing.js';
import { Receiver } from './receiver.js';
import type { OwnSection } from './section.js';

/** Record types a channel accepts from its peer (docs/spec-channel.md §5). */
const CHANNEL_RECORDS = [REC_DATA, REC_REQUEST, REC_RESPONSE];

/** What the receiving side needs from its channel. */
export interface RxHost {
  /** Room for one more message (a listener or the iterator's queue), and not paused. */
  canDeliver(): boolean;
  /** Hand over one validated message (a private copy). */
  deliver(type: number, data: Buffer, seq: number, corr: number): void;
  /** Latch a protocol violation of the peer; returns false. */
  violation(reason: string, detail: string): false;
  isClosed(): boolean;
}

export class ChannelRx {
  /** Our reading of the peer's ring; null until attached. */
  receiver: Receiver | null = null;
  /** Sequence number of the last message received (0: none). */
  lastReceivedSeq = 0;
  /** Sequence number the next record must carry. */
  private next = 0;

  constructor(
    private readonly sec: OwnSection,
    private readonly ep: IvshmemEndpoint,
    private readonly peer: number,
    private readonly vector: number,
    private readonly counters: { received: number; bytesReceived: number; doorbellsRung: number },
    private readonly host: RxHost,
  ) {}

  /**
   * The peer's half of the handshake: once its slot for us names our session,
   * read where its stream starts (the session word is written last, so it is
   * read first and last), and start consuming there. Returns the first
   * sequence number we will receive, or 0 (not yet, or a violation, latched
   * through the host).
   */
  attach(pw: Int32Array, hdr: PeerHeader, peerSession: number): number {
    const me = this.ep.id;
    const my = this.sec.session;
    if (Atomics.load(pw, slotIndex(me, S_TX_SESSION)) >>> 0 !== my) return 0; // the peer has not seen us yet
    const start = Atomics.load(pw, slotIndex(me, S_TX_START)) >>> 0;
    const startSeq = Atomics.load(pw, slotIndex(me, S_TX_START_SEQ)) >>> 0;
    if (Atomics.load(pw, slotIndex(me, S_TX_SESSION)) >>> 0 !== my) return 0;
    if (start % REC_ALIGN !== 0 || startSeq === 0) {
      this.host.violation('bad-stream-start', `stream start ${start} / sequence ${startSeq}`);
      return 0;
    }
    const ring = new RingReader(pw, hdr.ringOffset, hdr.ringSize, start, CHANNEL_RECORDS);
    const e = ring.loadTail();
    if (e) {
      this.host.violation(e, `tail at attach, stream start ${start}`);
      return 0;
    }
    const p = this.peer;
    this.sec.setSlot(p, S_RX_HEAD, start);
    this.sec.setSlot(p, S_RX_SEQ, (startSeq - 1) >>> 0);
    this.sec.setSlot(p, S_RX_ARMED, 0);
    this.sec.setSlot(p, S_RX_SESSION, peerSession);
    this.receiver = new Receiver(this.sec, this.ep, p, pw, this.vector, this.counters, ring);
    this.next = startSeq;
    this.lastReceivedSeq = (startSeq - 1) >>> 0;
    return startSeq;
  }

  /** Read what the peer published, from its section `src`. Returns true if anything was consumed. */
  receive(src: Uint8Array): boolean {
    const rx = this.receiver;
    const host = this.host;
    if (!rx || !host.canDeliver()) return false;
    const r = rx.ring;
    const err = r.loadTail();
    if (err) return host.violation(err, `tail ${r.peekTail()} against consumer position ${r.pos}`);
    if (!r.available) return false;
    const rec = rx.rec;
    // Bounded: at most the ring's worth of records per call.
    let budget = r.size >>> 4;
    let released = 0;
    while (r.available && budget-- > 0 && this.receiver === rx && host.canDeliver()) {
      const e = r.parse(rec);
      if (e) return host.violation(e, `record at position ${r.pos}`);
      if (rec.seq !== this.next) return host.violation('seq-mismatch', `record at position ${rec.pos} has sequence ${rec.seq}, expected ${this.next}`);
      if (rec.type !== REC_DATA && rec.corr === 0) return host.violation('bad-correlation', `${rec.type === REC_REQUEST ? 'request' : 'response'} ${rec.seq} without correlation ID`);
      // Copy out before use (the peer could change the bytes under us).
      const data = Buffer.allocUnsafe(rec.length);
      data.set(src.subarray(rec.offset, rec.offset + rec.length));
      r.pos = rec.end;
      this.next = (rec.seq + 1) >>> 0;
      this.lastReceivedSeq = rec.seq;
      this.counters.received++;
      this.counters.bytesReceived += rec.length;
      // Free ring space during a long batch, so the writer can go on.
      released += rec.end - rec.pos;
      if (released >= r.size >>> 2) {
        rx.release(rec.seq);
        released = 0;
      }
      host.deliver(rec.type, data, rec.seq, rec.corr);
    }
    if (this.receiver === rx && !host.isClosed()) rx.release(this.lastReceivedSeq);
    return true;
  }

  /** Has the peer published past us? (unvalidated peek, for probes) */
  get pending(): boolean {
    return this.receiver !== null && this.receiver.pending;
  }

  arm(on: boolean): void {
    this.receiver?.arm(on);
  }
}
