// The sending half shared by Channel and Publisher: the ring of our own
// section, sequence numbering (docs/spec-channel.md §5: 1, 2, ... per
// session, never 0) and the doorbell to each reader that asked for one
// (§7). Callers claim room, write the payload in place, and commit.
import { InvalidArgumentError } from '../../errors.js';
import type { IvshmemEndpoint } from '../../ivshmem/endpoint.js';
import { outputSizeFor } from '../layout.js';
import { RingWriter } from './framing.js';
import type { OwnSection } from './section.js';
import { WAKE_ON_RECORDS, wakeRequested } from './wake.js';

/** A peer that reads our ring: its ID and its section, where it publishes its wake request. */
export interface ReaderLink {
  readonly peer: number;
  readonly pw: Int32Array;
}

export class Sender {
  readonly writer: RingWriter;
  /** Sequence number the next record carries. */
  nextSeq = 1;
  /** The peers reading our ring now (the owner keeps this current). */
  readers: readonly ReaderLink[] = [];

  constructor(
    sec: OwnSection,
    private readonly ep: IvshmemEndpoint,
    private readonly vector: number,
    private readonly counters: { doorbellsRung: number },
    /** "message" or "sample", for errors. */
    private readonly noun: string,
  ) {
    this.writer = new RingWriter(sec.bytes, sec.w, sec.geo.ringOffset, sec.geo.ringSize);
    this.writer.reset(0);
  }

  /** Largest payload of one record: half the ring. */
  get maxPayload(): number {
    return this.writer.maxPayload;
  }

  /** Sequence number of the last record committed (0: none yet). */
  get lastSeq(): number {
    return (this.nextSeq - 1) >>> 0;
  }

  /** A new session: empty ring, numbering from 1. */
  reset(): void {
    this.writer.reset(0);
    this.nextSeq = 1;
  }

  /** Refuse a payload size no record can carry, naming the limit and the fix. */
  checkSize(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${this.noun} size ${n} must be a whole number of bytes`);
    if (n > this.writer.maxPayload) {
      throw new InvalidArgumentError(
        `${this.noun} of ${n} bytes exceeds the limit of ${this.writer.maxPayload} bytes (half the ring); give the link a larger outputSize, at least ${outputSizeFor(n, this.ep.maxPeers)} bytes`);
    }
  }

  /** Reserve room for `size` bytes given the slowest consumer position `head`; the payload's offset in our section, or -1 when full. */
  claim(size: number, head: number): number {
    return this.writer.claim(size, head);
  }

  /**
   * Number and publish the claimed record (`length` bytes already written at
   * the claimed offset), then ring every reader whose wake request this move
   * of the tail crossed. Returns the record's sequence number.
   */
  commit(type: number, length: number, corr: number): number {
    const seq = this.nextSeq;
    this.nextSeq = (seq + 1) >>> 0 || 1;
    const old = this.writer.tail;
    const tail = this.writer.commit(type, length, seq, corr);
    const readers = this.readers;
    for (let i = 0; i < readers.length; i++) {
      const r = readers[i]!;
      if (wakeRequested(r.pw, this.ep.id, WAKE_ON_RECORDS, tail, old)) {
        this.counters.doorbellsRung++;
        this.ep.ring(r.peer, this.vector);
      }
    }
    return seq;
  }
}
