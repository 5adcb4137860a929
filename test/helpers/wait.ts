// The one way tests wait for something to become true.
//
// The deadline is a watchdog, never a speed assertion: it only turns a hang
// into a failure that names what was awaited and what was last observed, so a
// loaded machine makes a test slower, not red.

/** Thrown when the watchdog of `until` fires. */
export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

/**
 * Lets a producer (a line reader, an exit handler) wake a waiting `until` at
 * once instead of at its next probe: pass it as `waker` and call `wake()`
 * whenever something the condition reads has changed.
 */
export class Waker {
  private pending: (() => void)[] = [];

  wake(): void {
    for (const w of this.pending.splice(0)) w();
  }

  /** Resolves after `ms` or at the next `wake()`, whichever comes first. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.pending = this.pending.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.pending.push(done);
    });
  }
}

export interface WaitOptions {
  /** Watchdog in milliseconds (default 10 000). */
  timeoutMs?: number;
  /**
   * Watchdog counted in event-loop turns instead of time, probing on every
   * turn: for seeded simulations that must fail the same way on any machine.
   */
  turns?: number;
  /**
   * A fixed pause between probes, for probes that act (send a signal) or
   * cost (spawn a process). 0 probes on every event-loop turn (in-process
   * links, whose doorbells arrive on setImmediate; busy, so not for waits on
   * another process). Unset: the first probes on the next turns, then a timer
   * backing off 1, 2, 4 … ms up to 10 ms.
   */
  intervalMs?: number;
  /** The state to report when the wait fails (evaluated then: the last observed). */
  state?: () => unknown;
  /** Checked after each failed probe: a string ends the wait at once with that reason (a process died). */
  abort?: () => string | false | null | undefined;
  /** Wakes the wait early from a timer pause (see Waker). */
  waker?: Waker;
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/** Unset intervalMs: this many probes on the next event-loop turns, then a timer backing off up to MAX_BACKOFF_MS. */
const EAGER_TURNS = 16;
const MAX_BACKOFF_MS = 10;

const turn = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

function show(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 2000 ? `${s.slice(0, 2000)}…` : s;
}

/**
 * Wait until `cond()` returns a truthy value and return that value; `cond`
 * may be async. `opts` is the watchdog in ms or a WaitOptions. An exception
 * thrown by `cond` propagates (a broken probe is a test bug, not a "not yet").
 */
export async function until<T>(cond: () => T | Promise<T>, what: string, opts: number | WaitOptions = {}): Promise<Truthy<Awaited<T>>> {
  const o: WaitOptions = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const start = Date.now();
  for (let round = 0; ; round++) {
    const v = await cond();
    if (v) return v as Truthy<Awaited<T>>;
    const last = (): string => (o.state ? show(o.state()) : `the condition was ${show(v)}`);
    const reason = o.abort?.();
    if (reason) throw new Error(`${reason} (while waiting for ${what}; last state: ${last()})`);
    if (o.turns !== undefined ? round + 1 >= o.turns : Date.now() - start >= timeoutMs) {
      const limit = o.turns !== undefined ? `${o.turns} event-loop turns` : `${timeoutMs} ms`;
      throw new WaitTimeout(`watchdog: ${what} not reached within ${limit}; last state: ${last()}`);
    }
    const ms = o.turns !== undefined ? 0 : (o.intervalMs ?? (round < EAGER_TURNS ? 0 : Math.min(MAX_BACKOFF_MS, 2 ** (round - EAGER_TURNS))));
    if (ms === 0) await turn();
    else await (o.waker ? o.waker.sleep(ms) : new Promise<void>((r) => setTimeout(r, ms)));
  }
}

/** A fixed pause (to give something that must NOT happen its chance; never to wait for something that must). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
