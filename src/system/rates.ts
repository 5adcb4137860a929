// Per-second rates of a link's counters, sampled once a second, and the last
// two minutes of them for the dashboard's plots.
import { COUNTER_NAMES, zeroCounters, type Counters } from './report.js';

/** Per-second rates of a link at one moment. */
export interface RateSample extends Counters {
  t: number;
}

const HISTORY = 120;

export class LinkRates {
  rates: RateSample = { t: Date.now(), ...zeroCounters() };
  /** The last samples, oldest first. */
  readonly history: RateSample[] = [];
  private prev: Counters | null = null;
  private prevAt = Date.now();

  /** Record one sample from the cumulative `totals`. */
  sample(totals: Counters, now = Date.now()): void {
    const dt = Math.max(1, now - this.prevAt) / 1000;
    const p = this.prev ?? totals;
    const r: RateSample = { t: now, ...zeroCounters() };
    // A restarted cell reports from zero again: never show a negative rate.
    for (const k of COUNTER_NAMES) r[k] = Math.max(0, Math.round((totals[k] - p[k]) / dt));
    this.rates = r;
    this.prev = totals;
    this.prevAt = now;
    this.history.push(r);
    if (this.history.length > HISTORY) this.history.shift();
  }
}
