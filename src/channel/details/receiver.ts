// The receiving half shared by Channel and Subscriber: our reading of one
// peer's ring. The consumer position and the last sequence number consumed
// live in our own section, in our slot for that peer (docs/spec-channel.md
// §4); publishing them frees ring space, and the writer is rung if it waits
// for that space (§7).
import type { IvshmemEndpoint } from '../../ivshmem/endpoint.js';
import { S_RX_ARMED, S_RX_HEAD, S_RX_SEQ, S_RX_WAKE_AT } from '../layout.js';
import { newRecordView, RingReader } from './framing.js';
import type { OwnSection } from './section.js';
import { WAKE_ON_SPACE, wakeRequested } from './wake.js';

export class Receiver {
  readonly ring: RingReader;
  /** The record parse() filled in last. */
  readonly rec = newRecordView();
  /** Consumer position as last published (what the writer may reuse up to). */
  published: number;

  constructor(
    private readonly sec: OwnSection,
    private readonly ep: IvshmemEndpoint,
    readonly peer: number,
    /** The writer's section words (its tail, its wake request for space). */
    readonly pw: Int32Array,
    private readonly vector: number,
    private readonly counters: { doorbellsRung: number },
    ring: RingReader,
  ) {
    this.ring = ring;
    this.published = ring.pos;
  }

  /**
   * Publish our consumer position and the sequence number of the last record
   * consumed, then ring the writer if it asked for the space this frees.
   */
  release(lastSeq: number): void {
    const pos = this.ring.pos;
    const old = this.published;
    this.published = pos;
    this.sec.setSlot(this.peer, S_RX_SEQ, lastSeq);
    this.sec.setSlot(this.peer, S_RX_HEAD, pos);
    if (wakeRequested(this.pw, this.ep.id, WAKE_ON_SPACE, pos, old)) {
      this.counters.doorbellsRung++;
      this.ep.ring(this.peer, this.vector);
    }
  }

  /** Publish (or withdraw) our wake request for records past the current position. */
  arm(on: boolean): void {
    this.sec.setSlot(this.peer, S_RX_WAKE_AT, this.ring.pos);
    this.sec.setSlot(this.peer, S_RX_ARMED, on ? 1 : 0);
  }

  /** Cheap check for pollers: has the writer's tail moved past us? (not validated; receive() validates) */
  get pending(): boolean {
    return this.ring.peekTail() !== this.ring.pos;
  }
}
