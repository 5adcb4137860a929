// How a protocol endpoint on an ivshmem link waits for its peer: one
// implementation of the three wait modes for every protocol layer (channels,
// pub-sub, ivshmem-net). The protocol says what its work is (hooks); the pump
// decides when to run it, when to spin and when to sleep on the doorbell.
//
// event:  sleep on the doorbell eventfd in the event loop. Before sleeping
//         the protocol publishes a wake request (an event index, docs/spec-channel.md
//         §7, docs/spec-net.md §6), so the peer rings only when we sleep: an
//         idle endpoint costs no CPU and a busy stream rings rarely.
// poll:   never arm; run the work on every event-loop turn (setImmediate) and,
//         with spinMicros > 0, spin on the probe up to that long per turn.
//         Burns a core, by choice.
// hybrid: poll for spinMicros after the last activity, then arm and sleep.
//
// Fairness, as Linux NAPI busy polling does it: one turn runs at most
// `budget` rounds of work and then yields to the event loop (timers, sockets,
// a TAP fd of the same process run in between), and a poll-mode pump that
// has found nothing for IDLE_YIELD_MICROS gives its core away (sched_yield)
// once per turn from then on, so a task waiting for a core (the peer when
// two cells share one core, or a third process beside two spinning ones on
// two cores) runs now instead of at the end of our scheduler time slice.
// While traffic flows the pump never yields: the idle clock restarts with
// every round of work.
import { InvalidArgumentError } from '../errors.js';
import { yieldCpu } from '../sys/sched.js';

/** How an endpoint waits for its peer: `event` (sleep on the doorbell), `poll` (busy-poll, opt-in) or `hybrid` (spin a bounded time, then sleep). */
export type WaitMode = 'event' | 'poll' | 'hybrid';

/** Default hybrid spin window, µs: about ten sleeping wake-ups on the machine kind measured in the README. */
export const HYBRID_SPIN_MICROS = 200;
/** Default work rounds per turn before yielding to the event loop (NAPI's default weight). */
export const WORK_BUDGET = 64;
/** Idle time after which a poll-mode pump gives its core away once per turn, µs. */
export const IDLE_YIELD_MICROS = 50;

/** The wait mode of a channel or ivshmem-net endpoint and its spin budget. */
export interface WaitOptions {
  /** Default 'event'. */
  mode?: WaitMode;
  /**
   * hybrid: how long to keep polling after the last activity (default 200 µs).
   * poll: synchronous spin per event-loop turn (default 0: one check per turn).
   * Ignored in event mode.
   */
  spinMicros?: number;
  /** Rounds of work per event-loop turn before the pump yields (default 64). */
  budget?: number;
}

/** Wait options with every default applied (from checkWaitOptions). */
export type WaitPolicy = Required<WaitOptions>;

/**
 * Check wait options once, with every problem named (`what` names the
 * object, e.g. "channel on peer 0 of link demo"); returns them with defaults.
 */
export function checkWaitOptions(o: WaitOptions | undefined, what: string): WaitPolicy {
  const mode = o?.mode ?? 'event';
  if (mode !== 'event' && mode !== 'poll' && mode !== 'hybrid') {
    throw new InvalidArgumentError(`${what}: wait mode "${String(mode)}" must be 'event', 'poll' or 'hybrid'`);
  }
  const spinMicros = o?.spinMicros ?? (mode === 'hybrid' ? HYBRID_SPIN_MICROS : 0);
  if (typeof spinMicros !== 'number' || !Number.isFinite(spinMicros) || spinMicros < 0 || spinMicros > 1e6) {
    throw new InvalidArgumentError(`${what}: spinMicros ${String(spinMicros)} must be between 0 and 1000000`);
  }
  const budget = o?.budget ?? WORK_BUDGET;
  if (!Number.isInteger(budget) || budget < 1 || budget > 1e6) {
    throw new InvalidArgumentError(`${what}: budget ${String(budget)} must be an integer between 1 and 1000000`);
  }
  return { mode, spinMicros, budget };
}

/**
 * What the pump drives. All three are called synchronously from the pump and
 * must be bounded (no loop longer than the protocol's ring).
 */
export interface PumpHooks {
  /** Do one round of pending work (receive a batch, move queued sends); true if anything happened. */
  work(): boolean;
  /** Cheap check, no side effects: is there something for work()? Called in spin loops. */
  probe(): boolean;
  /**
   * Publish (true) or withdraw (false) the wake requests that make the peer
   * ring our doorbell; return probe() evaluated after arming, so something
   * that arrived just before the request was visible is not slept through.
   */
  arm(on: boolean): boolean;
}

/**
 * Drives a protocol endpoint's work in one of the three wait modes.
 *
 * - `start()` once the hooks may run; `stop()` for good (a stopped pump never
 *   calls a hook again).
 * - `kick()` whenever something may have happened: a doorbell, a state
 *   change, a user call that queued work. `kick(true)` runs a turn at once
 *   (synchronously) unless one is already scheduled; use it from a doorbell
 *   handler, never from inside a hook.
 *
 * A turn runs work() up to `budget` times while it reports progress. Then:
 * poll mode spins on probe() for up to `spinMicros` if the turn found nothing
 * (and works again if the probe hit), gives the core away (sched_yield) if it
 * has found nothing for IDLE_YIELD_MICROS, and schedules the next turn; hybrid mode schedules the next turn while the
 * last activity is younger than `spinMicros`; otherwise (and always in event
 * mode) the pump arms and sleeps until the next kick(). A turn that ends
 * with its budget used up is always followed by another turn.
 */
export class Pump {
  readonly mode: WaitMode;
  private readonly spinMs: number;
  private readonly budget: number;
  private readonly hooks: PumpHooks;
  private scheduled = false;
  private stopped = false;
  /** performance.now() of the last round that did work (hybrid window, poll idle yield). */
  private lastActivity = 0;
  private armed = false;
  /** Turns run, sleeps (armed with nothing to do), kicks and CPU yields: for stats and tests. */
  readonly stats = { turns: 0, sleeps: 0, wakes: 0, yields: 0 };

  constructor(hooks: PumpHooks, policy: WaitPolicy) {
    this.hooks = hooks;
    this.mode = policy.mode;
    this.spinMs = policy.spinMicros / 1000;
    this.budget = policy.budget;
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

  get isStopped(): boolean {
    return this.stopped;
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

  /** work() while it makes progress, at most `budget` rounds; returns the rounds that did something. */
  private rounds(): number {
    const h = this.hooks;
    let n = 0;
    while (n < this.budget && !this.stopped && h.work()) n++;
    return n;
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
    let n = this.rounds();
    if (this.stopped) return;
    if (n === this.budget) {
      // Budget used up: there is probably more; let the event loop run first.
      if (this.mode !== 'event') this.lastActivity = performance.now();
      this.schedule();
      return;
    }
    if (this.mode === 'poll') {
      // Found something while spinning: do it in this turn rather than after
      // another trip through the event loop (an epoll_wait each).
      if (n === 0 && this.spinMs > 0 && this.spin()) n = this.rounds();
      const now = performance.now();
      if (n > 0) this.lastActivity = now;
      else if (now - this.lastActivity >= IDLE_YIELD_MICROS / 1000 && !this.stopped) {
        this.stats.yields++;
        yieldCpu();
      }
      this.schedule();
      return;
    }
    if (this.mode === 'hybrid') {
      const now = performance.now();
      if (n > 0) this.lastActivity = now;
      if (now - this.lastActivity < this.spinMs) {
        if (this.armed) this.disarm();
        this.schedule();
        return;
      }
    }
    // Going to sleep: publish the wake request, then look once more, so a
    // record that arrived between the last check and the arming is not missed.
    this.armed = true;
    if (this.hooks.arm(true)) {
      this.schedule();
      return;
    }
    this.stats.sleeps++;
  }
}
