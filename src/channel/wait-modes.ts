// How a channel endpoint waits for the peer (DESIGN.md "Performance model").
//
// event:  sleep on the doorbell eventfd in the event loop; the peer rings only
//         when we armed a wake request (event-index style), so an idle channel
//         costs nothing and a busy stream rings rarely. ~23 µs per wake on this
//         machine kind (baselines.md S5).
// poll:   never arm; check the shared index on every event-loop turn
//         (setImmediate, baselines.md S3: 1.3 µs round trip), optionally
//         spinning `spinMicros` synchronously per turn. Burns a core, by choice.
// hybrid: poll for `spinMicros` after the last activity, then arm and sleep.
import { InvalidArgumentError } from '../errors.js';

export type WaitMode = 'event' | 'poll' | 'hybrid';

export interface WaitOptions {
  /** Default 'event'. */
  mode?: WaitMode;
  /**
   * hybrid: how long to keep polling after the last activity (default 200 µs).
   * poll: synchronous spin per event-loop turn (default 0: one check per turn).
   */
  spinMicros?: number;
}

export function checkWaitOptions(o: WaitOptions | undefined, what: string): Required<WaitOptions> {
  const mode = o?.mode ?? 'event';
  if (mode !== 'event' && mode !== 'poll' && mode !== 'hybrid') {
    throw new InvalidArgumentError(`${what}: wait mode "${String(mode)}" must be 'event', 'poll' or 'hybrid'`);
  }
  const spinMicros = o?.spinMicros ?? (mode === 'hybrid' ? 200 : 0);
  if (!Number.isFinite(spinMicros) || spinMicros < 0 || spinMicros > 1e6) {
    throw new InvalidArgumentError(`${what}: spinMicros ${spinMicros} must be between 0 and 1000000`);
  }
  return { mode, spinMicros };
}

export interface PumpHooks {
  /** Do pending work; true if anything happened. Must be bounded. */
  work(): boolean;
  /** Cheap check: is there something for work()? */
  probe(): boolean;
  /** Publish (true) or withdraw (false) wake requests; returns probe() after arming. */
  arm(on: boolean): boolean;
}

/** Work rounds per scheduling slice before yielding to the event loop. */
const ROUNDS = 64;

export class Pump {
  readonly mode: WaitMode;
  private readonly spinMs: number;
  private readonly hooks: PumpHooks;
  private scheduled = false;
  private stopped = false;
  private lastActivity = 0;
  private armed = false;
  /** Turns spent polling and sleeps (for stats and tests). */
  readonly stats = { turns: 0, sleeps: 0, wakes: 0 };

  constructor(hooks: PumpHooks, opts: Required<WaitOptions>) {
    this.hooks = hooks;
    this.mode = opts.mode;
    this.spinMs = opts.spinMicros / 1000;
  }

  start(): void {
    if (this.mode === 'poll') this.disarm();
    this.schedule();
  }

  /** Something may have happened (a doorbell, a state change, a user call). */
  kick(sync = false): void {
    if (this.stopped) return;
    this.stats.wakes++;
    if (sync && !this.scheduled) this.run();
    else this.schedule();
  }

  stop(): void {
    this.stopped = true;
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(this.onImmediate);
  }

  private readonly onImmediate = (): void => {
    this.scheduled = false;
    this.run();
  };

  private disarm(): void {
    if (this.armed || this.mode === 'poll') {
      this.armed = false;
      this.hooks.arm(false);
    }
  }

  /** Spin on probe() for at most spinMicros; true if something arrived. */
  private spin(): boolean {
    const h = this.hooks;
    const end = performance.now() + this.spinMs;
    for (;;) {
      // The clock costs more than a probe: read it every 16 probes.
      for (let i = 0; i < 16; i++) if (h.probe()) return true;
      if (performance.now() >= end) return false;
    }
  }

  private run(): void {
    if (this.stopped) return;
    this.stats.turns++;
    const h = this.hooks;
    let did = false;
    for (let i = 0; i < ROUNDS && h.work(); i++) did = true;
    if (this.stopped) return;
    if (this.mode === 'poll') {
      if (!did && this.spinMs > 0 && this.spin()) {
        // Found something while spinning: do it in this turn rather than
        // after another trip through the event loop (an epoll_wait each).
        for (let i = 0; i < ROUNDS && h.work(); i++);
      }
      this.schedule();
      return;
    }
    if (this.mode === 'hybrid') {
      const now = performance.now();
      if (did) this.lastActivity = now;
      if (now - this.lastActivity < this.spinMs) {
        if (this.armed) this.disarm();
        this.schedule();
        return;
      }
    }
    // Going to sleep: publish the wake request, then look once more, so a
    // record that arrived between the last check and the arming is not missed.
    this.armed = true;
    if (h.arm(true)) {
      this.schedule();
      return;
    }
    this.stats.sleeps++;
  }
}
