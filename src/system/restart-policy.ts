// The restart policy of a supervised process (docs/supervisor.md, "Cells"):
// `never`, `on-failure` (exit code other than 0, or a signal), `always`; at
// most `maxRestarts` restarts within `windowMs`, each waiting `delayMs`
// doubled per restart still inside the window, capped at 30 s.
import type { RestartConfig } from './config-schema.js';

const MAX_DELAY_MS = 30_000;

export type RestartDecision =
  | { restart: true; delayMs: number }
  | { restart: false; why: 'policy' | 'budget' };

export class RestartBudget {
  private times: number[] = [];

  constructor(readonly config: RestartConfig) {}

  /** Restarts counted in the current window. */
  get recent(): number {
    return this.times.length;
  }

  /** Whether to restart after an exit (`failed`: non-zero code or a signal); a restart is charged. */
  decide(failed: boolean, now = Date.now()): RestartDecision {
    const { policy, maxRestarts, windowMs, delayMs } = this.config;
    this.times = this.times.filter((t) => now - t < windowMs);
    if (!(policy === 'always' || (policy === 'on-failure' && failed))) return { restart: false, why: 'policy' };
    if (this.times.length >= maxRestarts) return { restart: false, why: 'budget' };
    const delay = Math.min(MAX_DELAY_MS, delayMs * 2 ** this.times.length);
    this.times.push(now);
    return { restart: true, delayMs: delay };
  }

  /** A fresh budget (a manual start or restart). */
  reset(): void {
    this.times = [];
  }
}
