// Scheduler calls for busy-polling loops.
import { c } from './libc.js';

/**
 * Give this thread's core to another runnable thread, if there is one
 * (sched_yield(2)); returns at once otherwise. A busy-polling loop calls it
 * when a round found nothing, so a peer waiting for a core runs now rather
 * than after our time slice.
 */
export function yieldCpu(): void {
  c.sched_yield();
}
