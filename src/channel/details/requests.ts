// Request/response correlation of a channel (docs/spec-channel.md §5: a
// REQUEST carries a non-zero correlation ID, its RESPONSE the same one).
// Responses may come in any order; one that matches nothing is counted by
// the caller and dropped.
import { TimeoutError } from '../../errors.js';

interface Pending<T> {
  resolve: (m: T) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class Requests<T> {
  private nextCorr = 1;
  private readonly pending = new Map<number, Pending<T>>();

  /** A fresh correlation ID (never 0) and the promise of its response, rejected with a TimeoutError after `timeoutMs`. */
  open(timeoutMs: number, what: (corr: number) => string): { corr: number; response: Promise<T> } {
    const corr = this.nextCorr;
    this.nextCorr = this.nextCorr >= 0xffffffff ? 1 : this.nextCorr + 1;
    const response = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(corr);
        reject(new TimeoutError(`${what(corr)} got no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(corr, { resolve, reject, timer });
    });
    return { corr, response };
  }

  /** Deliver the response to `corr`; false if no request waits for it. */
  settle(corr: number, response: T): boolean {
    const p = this.pending.get(corr);
    if (!p) return false;
    this.pending.delete(corr);
    clearTimeout(p.timer);
    p.resolve(response);
    return true;
  }

  /** The request itself failed (could not be sent). */
  fail(corr: number, err: Error): void {
    const p = this.pending.get(corr);
    if (!p) return;
    this.pending.delete(corr);
    clearTimeout(p.timer);
    p.reject(err);
  }

  rejectAll(err: Error): void {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}
