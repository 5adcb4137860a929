// Message framing: a single-producer single-consumer byte ring of
// length-prefixed records with a padding record at the wrap
// (docs/spec-channel.md §5). The writer half works on its own section; the
// reader half reads a peer's section and trusts nothing it reads there: each
// index is read once, every length is checked against what the tail says is
// there before it is used, and no read leaves [base, base + size).
import { H_TAIL, R_CORR, R_LENGTH, R_SEQ, R_TYPE, REC_ALIGN, REC_HEADER, REC_PAD, recordSize } from '../layout.js';

/** The writer half. Positions are byte counts modulo 2^32; the ring size is a power of two. */
export class RingWriter {
  readonly base: number;
  readonly size: number;
  readonly mask: number;
  readonly maxPayload: number;
  private readonly bytes: Buffer;
  private readonly w: Int32Array;
  private readonly u32: Uint32Array;
  /** Private producer position (the shared copy is only ever written from here). */
  tail = 0;
  /** Set by claim(): where the record goes and whether a pad precedes it. */
  private claimPos = -1;
  private claimPad = 0;

  constructor(bytes: Buffer, w: Int32Array, base: number, size: number) {
    this.bytes = bytes;
    this.w = w;
    this.u32 = new Uint32Array(w.buffer, w.byteOffset, w.length);
    this.base = base;
    this.size = size;
    this.mask = size - 1;
    this.maxPayload = size / 2 - REC_HEADER;
  }

  reset(tail: number): void {
    this.tail = tail >>> 0;
    this.claimPos = -1;
    Atomics.store(this.w, H_TAIL, this.tail | 0);
  }

  /** Bytes a record of `payload` bytes needs at the current tail, padding included. */
  need(payload: number): number {
    const rec = recordSize(payload);
    const toEnd = this.size - (this.tail & this.mask);
    return rec > toEnd ? toEnd + rec : rec;
  }

  /**
   * Reserve room for a record of up to `payload` bytes given the consumer
   * position `head`. Returns the byte offset of the payload in the section, or -1 when full.
   */
  claim(payload: number, head: number): number {
    const used = (this.tail - head) >>> 0;
    const rec = recordSize(payload);
    const toEnd = this.size - (this.tail & this.mask);
    // A record never crosses the wrap: a pad fills the rest of the ring first.
    const pad = rec > toEnd ? toEnd : 0;
    if (used + pad + rec > this.size) return -1;
    this.claimPad = pad;
    this.claimPos = (this.tail + pad) >>> 0;
    return this.base + (this.claimPos & this.mask) + REC_HEADER;
  }

  /** Publish the claimed record with `length` <= claimed bytes. Returns the new tail. */
  commit(type: number, length: number, seq: number, corr: number): number {
    const u = this.u32;
    if (this.claimPad) {
      const p = (this.base + (this.tail & this.mask)) >> 2;
      u[p + R_LENGTH] = this.claimPad - REC_HEADER;
      u[p + R_TYPE] = REC_PAD;
      u[p + R_SEQ] = 0;
      u[p + R_CORR] = 0;
    }
    const h = (this.base + (this.claimPos & this.mask)) >> 2;
    u[h + R_LENGTH] = length;
    u[h + R_TYPE] = type;
    u[h + R_SEQ] = seq;
    u[h + R_CORR] = corr;
    this.tail = (this.claimPos + recordSize(length)) >>> 0;
    this.claimPos = -1;
    // Release: the record bytes above are visible before the new tail (seq_cst store).
    Atomics.store(this.w, H_TAIL, this.tail | 0);
    return this.tail;
  }

  abort(): void {
    this.claimPos = -1;
  }

  get claimed(): boolean {
    return this.claimPos >= 0;
  }

  /** Copy `data` into the claimed record. */
  write(offset: number, data: Uint8Array): void {
    this.bytes.set(data, offset);
  }

  /**
   * Bytes the record at `pos` of our own ring occupies (we wrote it, so it is
   * trusted): a pad reaches the end of the ring.
   */
  spanAt(pos: number): number {
    const h = (this.base + (pos & this.mask)) >> 2;
    return this.u32[h + R_TYPE] === REC_PAD ? this.size - (pos & this.mask) : recordSize(this.u32[h + R_LENGTH]!);
  }

  /** Is the record at `pos` of our own ring a pad? */
  isPad(pos: number): boolean {
    return this.u32[((this.base + (pos & this.mask)) >> 2) + R_TYPE] === REC_PAD;
  }
}

export interface RecordView {
  type: number;
  seq: number;
  corr: number;
  /** Byte offset of the payload in the peer's section. */
  offset: number;
  length: number;
  /** Position of the record start and just past it. */
  pos: number;
  end: number;
}

export const newRecordView = (): RecordView => ({ type: 0, seq: 0, corr: 0, offset: 0, length: 0, pos: 0, end: 0 });

/**
 * The reader half over a peer's ring. `parse()` returns the next record or a
 * violation reason. It never reads outside [base, base + size) and never
 * trusts a length before checking it against what the tail says is there.
 */
export class RingReader {
  readonly base: number;
  readonly size: number;
  readonly mask: number;
  readonly maxPayload: number;
  private readonly pw: Int32Array;
  private readonly pu32: Uint32Array;
  /** Bit t set: record type t is valid in this ring (types are < 32). */
  private readonly typeMask: number;
  /** Private consumer position. */
  pos: number;
  /** Tail as last read (once per batch). */
  tail: number;

  constructor(peerWords: Int32Array, base: number, size: number, pos: number, types: readonly number[]) {
    this.pw = peerWords;
    this.pu32 = new Uint32Array(peerWords.buffer, peerWords.byteOffset, peerWords.length);
    this.base = base;
    this.size = size;
    this.mask = size - 1;
    this.maxPayload = size / 2 - REC_HEADER;
    this.pos = pos >>> 0;
    this.tail = this.pos;
    this.typeMask = types.reduce((m, t) => m | (1 << t), 0);
  }

  /** Read the peer's tail once. Returns a violation reason or null. */
  loadTail(): string | null {
    return this.acceptTail(Atomics.load(this.pw, H_TAIL) >>> 0);
  }

  /** Take a tail value read by the caller, after the same checks as loadTail(). */
  acceptTail(t: number): string | null {
    if (t % REC_ALIGN !== 0) return 'tail-misaligned';
    // The tail may only be ahead of us by at most the ring size.
    if (((t - this.pos) >>> 0) > this.size) return 'tail-out-of-range';
    this.tail = t;
    return null;
  }

  get available(): boolean {
    return this.tail !== this.pos;
  }

  /** Peek the peer's tail without validating or storing (hot-path check for pollers). */
  peekTail(): number {
    return Atomics.load(this.pw, H_TAIL) >>> 0;
  }

  /**
   * Parse the record at pos (call only when available). Skips one padding
   * record. Returns the record, or a violation reason string. Does not advance.
   */
  parse(out: RecordView): string | null {
    let pos = this.pos;
    let avail = (this.tail - pos) >>> 0;
    for (let i = 0; i < 2; i++) {
      if (avail < REC_HEADER) return 'record-truncated';
      const off = pos & this.mask;
      const h = (this.base + off) >> 2;
      // Each field is read once into a local; checks use only the locals.
      const len = this.pu32[h + R_LENGTH]!;
      const type = this.pu32[h + R_TYPE]!;
      const toEnd = this.size - off;
      if (type === REC_PAD) {
        // A pad fills exactly the rest of the ring, and only there.
        if (i > 0) return 'double-pad';
        if (len !== toEnd - REC_HEADER) return 'bad-pad-length';
        if (avail < toEnd) return 'pad-beyond-tail';
        pos = (pos + toEnd) >>> 0;
        avail -= toEnd;
        continue;
      }
      if (type >= 32 || ((this.typeMask >>> type) & 1) === 0) return 'bad-record-type';
      if (len > this.maxPayload) return 'record-too-long';
      const total = REC_HEADER + len + ((REC_ALIGN - (len % REC_ALIGN)) % REC_ALIGN);
      if (total > avail) return 'record-beyond-tail';
      if (total > toEnd) return 'record-crosses-wrap';
      out.type = type;
      out.seq = this.pu32[h + R_SEQ]!;
      out.corr = this.pu32[h + R_CORR]!;
      out.offset = this.base + off + REC_HEADER;
      out.length = len;
      out.pos = pos;
      out.end = (pos + total) >>> 0;
      return null;
    }
    return 'bad-pad-length';
  }
}
