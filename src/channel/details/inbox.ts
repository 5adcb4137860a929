// Received items queued for an async iterator, up to a high-water mark.
/**
 * Received items queued for an async iterator, up to a high-water mark
 * (the owner stops reading the ring above it: back-pressure to the sender).
 */
export class Inbox<T> {
  private readonly items: T[] = [];
  private readonly takers: Array<(r: IteratorResult<T>) => void> = [];

  constructor(
    private readonly hwm: number,
    /** Called when the consumer took an item or waits for one (the owner may read more). */
    private readonly onDemand: () => void,
    private readonly isClosed: () => boolean,
  ) {}

  get hasRoom(): boolean {
    return this.items.length < this.hwm;
  }

  get size(): number {
    return this.items.length;
  }

  put(v: T): void {
    const t = this.takers.shift();
    if (t) t({ value: v, done: false });
    else this.items.push(v);
  }

  /** End every waiting iteration (the owner closed). */
  end(): void {
    for (const t of this.takers.splice(0)) t({ value: undefined, done: true });
  }

  iterator(): AsyncIterableIterator<T> {
    const self = this;
    return {
      next(): Promise<IteratorResult<T>> {
        if (self.items.length) {
          const v = self.items.shift()!;
          self.onDemand();
          return Promise.resolve({ value: v, done: false });
        }
        if (self.isClosed()) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          self.takers.push(resolve);
          self.onDemand();
        });
      },
      return(): Promise<IteratorResult<T>> {
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}
