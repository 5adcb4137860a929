// What a channel hands its user: a received Message (a private copy) and a
// Loan (ring space of our own section to write a message in place).
import { InvalidArgumentError } from '../errors.js';
import { REC_RESPONSE } from './layout.js';

/** The sending side a Message or Loan goes back to (details/channel-tx.ts). @internal */
export interface ChannelSink {
  enqueue(type: number, data: Uint8Array, corr: number): Promise<number>;
  commitLoan(l: Loan, length: number): Promise<number>;
  abortLoan(l: Loan): void;
}

/** A received message. `data` is a private copy: the ring space was released at once. */
export class Message {
  /** @internal */
  constructor(
    /** The payload (a private copy). */
    readonly data: Buffer,
    /** Sequence number (1, 2, ... per sender, continuing across our restarts). */
    readonly seq: number,
    /** Correlation ID of a request or response, else 0. */
    readonly correlationId: number,
    /** Sent with request(): answer it with respond(). */
    readonly isRequest: boolean,
    private readonly sink: ChannelSink | null,
  ) {}

  /** Answer a request (resolves like send(), with the response's sequence number). */
  respond(data: Uint8Array): Promise<number> {
    if (!this.isRequest || !this.sink) {
      return Promise.reject(new InvalidArgumentError(`message ${this.seq} is not a request; only messages from request() can be answered`));
    }
    return this.sink.enqueue(REC_RESPONSE, data, this.correlationId);
  }
}

/** A zero-copy send: write into `buffer` (ring space of our own section), then commit() or abort(). */
export class Loan {
  private done = false;
  /** @internal */
  constructor(
    /** Writable bytes inside the ring. Do not keep it after commit()/abort() or after the channel closes. */
    readonly buffer: Buffer,
    private readonly sink: ChannelSink,
  ) {}

  /** Publish the first `length` bytes (default all). Resolves with the message's sequence number. */
  commit(length = this.buffer.byteLength): Promise<number> {
    if (this.done) return Promise.reject(new InvalidArgumentError('loan was already committed or aborted'));
    if (!Number.isInteger(length) || length < 0 || length > this.buffer.byteLength) {
      return Promise.reject(new InvalidArgumentError(`commit length ${length} must be 0..${this.buffer.byteLength}`));
    }
    this.done = true;
    return this.sink.commitLoan(this, length);
  }

  /** Give the space back without sending. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.sink.abortLoan(this);
  }
}
