// A received pub-sub sample. In a 'sample' event it reads the publisher's
// section in place, read-only; from the async iterator it is a private copy.
//
// In 'overwrite' mode the publisher may reuse the bytes of an in-place sample
// at any time, even while a listener reads them (docs/spec-channel.md §10:
// the publisher moves its head past a record before it writes over it). So
// every read checks the head before and after it reads (a seqlock) and
// reports an overwritten sample as such instead of returning torn bytes:
// number reads return -1, copies -1 or null. Nothing here throws because of
// what the publisher did; a read outside the sample is the caller's mistake
// and throws InvalidArgumentError.
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { H_HEAD } from './layout.js';

/**
 * The subscriber's view of the publisher's section while attached to one
 * session: a sample read in place is intact while this source is live and
 * the publisher's head has not passed the sample's position.
 * @internal
 */
export class SampleSource {
  live = true;
  constructor(
    readonly view: Uint8Array,
    private readonly pw: Int32Array,
  ) {}

  /** Has the record at `pos` not been given up for overwriting? (one read of the publisher's head) */
  intact(pos: number): boolean {
    return this.live && ((Atomics.load(this.pw, H_HEAD) - pos) | 0) <= 0;
  }
}

/** A received sample, read in place from the publisher's section until released; reads check it was not overwritten meanwhile. */
export class Sample {
  // True JS private fields: the mapping is not reachable from outside (not even by Object.values).
  readonly #src: SampleSource | null;
  readonly #pos: number;
  readonly #offset: number;
  readonly #owned: Buffer | null;
  /** Payload bytes. */
  readonly byteLength: number;
  /** Sequence number (1, 2, ... per publisher session). */
  readonly seq: number;
  /** Samples lost (overwritten before we read them) just before this one. */
  readonly missed: number;

  /** @internal */
  constructor(src: SampleSource | null, pos: number, offset: number, byteLength: number, seq: number, missed: number, owned: Buffer | null) {
    this.#src = src;
    this.#pos = pos;
    this.#offset = offset;
    this.#owned = owned;
    this.byteLength = byteLength;
    this.seq = seq;
    this.missed = missed;
  }

  /** True while the bytes are still the ones published (always for copies). A read that returned a value was intact. */
  get valid(): boolean {
    return this.#owned !== null || this.#src!.intact(this.#pos);
  }

  /** The bytes to read: the copy, or the section (check `valid` after reading them). */
  #bytes(): Uint8Array {
    return this.#owned ?? this.#src!.view;
  }

  #base(): number {
    return this.#owned ? 0 : this.#offset;
  }

  /** Copy into `target`; returns the bytes copied, or -1 if the sample was overwritten (target content undefined). */
  copyTo(target: Uint8Array, targetStart = 0, sourceStart = 0, sourceEnd = this.byteLength): number {
    if (!this.valid) return -1;
    const s = Math.max(0, Math.min(sourceStart, this.byteLength));
    const e = Math.max(s, Math.min(sourceEnd, this.byteLength, s + target.byteLength - targetStart));
    const base = this.#base();
    target.set(this.#bytes().subarray(base + s, base + e), targetStart);
    return this.valid ? e - s : -1;
  }

  /** A private copy, or null if the sample was overwritten before the copy completed. */
  toBuffer(): Buffer | null {
    if (this.#owned) return Buffer.from(this.#owned);
    if (!this.valid) return null;
    const b = Buffer.allocUnsafe(this.byteLength);
    b.set(this.#bytes().subarray(this.#offset, this.#offset + this.byteLength));
    return this.valid ? b : null;
  }

  /** The byte at `i`, or -1 if the sample was overwritten. */
  readUInt8(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.byteLength) throw new InvalidArgumentError(`index ${i} outside sample of ${this.byteLength} bytes`);
    if (!this.valid) return -1;
    const v = this.#bytes()[this.#base() + i]!;
    return this.valid ? v : -1;
  }

  /** The little-endian u32 at `i`, or -1 if the sample was overwritten. */
  readUInt32LE(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i + 4 > this.byteLength) throw new InvalidArgumentError(`offset ${i} outside sample of ${this.byteLength} bytes`);
    if (!this.valid) return -1;
    const b = this.#bytes();
    const o = this.#base() + i;
    const v = (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
    return this.valid ? v : -1;
  }

  /** Hash the bytes in place; null if the sample was overwritten meanwhile. */
  digest(algorithm = 'sha256'): string | null {
    if (!this.valid) return null;
    const base = this.#base();
    const d = createHash(algorithm).update(this.#bytes().subarray(base, base + this.byteLength)).digest('hex');
    return this.valid ? d : null;
  }
}
