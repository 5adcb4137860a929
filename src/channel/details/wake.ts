// The doorbell decision, written once (docs/spec-channel.md §7): a peer that
// waits publishes a wake request in its own section (an "armed" flag and the
// position it last saw); whoever moves that position rings the peer only if
// the request is armed and the move crossed the wake point (the need_event
// rule). The writer looks at the reader's RX request after publishing
// records; the reader looks at the writer's TX request after freeing space.
import { needEvent, S_RX_ARMED, S_RX_WAKE_AT, S_TX_ARMED, S_TX_WAKE_AT, slotIndex } from '../layout.js';

export interface WakeRequest {
  readonly armed: number;
  readonly at: number;
}

/** The wake request a peer publishes for new records (it reads our ring). */
export const WAKE_ON_RECORDS: WakeRequest = { armed: S_RX_ARMED, at: S_RX_WAKE_AT };
/** The wake request a peer publishes for free space (it writes the ring we read). */
export const WAKE_ON_SPACE: WakeRequest = { armed: S_TX_ARMED, at: S_TX_WAKE_AT };

/**
 * Did the peer whose section words are `pw` ask us (peer `me`) for a
 * doorbell when a position moves from `old` to `next`? Reads each of the two
 * words once; whatever a peer writes there costs at most one doorbell.
 */
export function wakeRequested(pw: Int32Array, me: number, request: WakeRequest, next: number, old: number): boolean {
  return Atomics.load(pw, slotIndex(me, request.armed)) === 1 && needEvent(Atomics.load(pw, slotIndex(me, request.at)) >>> 0, next, old);
}
