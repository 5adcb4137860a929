// Counters of an ivshmem-net endpoint, modelled on the Linux driver's ethtool
// set (ivshmem-v2-notes.md c.7) plus bytes, handshakes and violations by reason.

// A type alias (not an interface) so it is assignable to Record<string, unknown>.
/** Cumulative counters of an ivshmem-net endpoint (frames, bytes, drops, doorbells, violations). */
export type NetCounters = {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  /** Doorbells we rang for TX (vring_need_event said the peer asked). */
  txNotify: number;
  /** Doorbells we rang for RX completions (the peer asked through used_event). */
  rxNotify: number;
  /** Data-vector interrupts received (tx_rx_interrupts). */
  interrupts: number;
  /** State-vector interrupts received. */
  stateInterrupts: number;
  /** Times TX stopped for lack of descriptors or FIFO space (tx_pause). */
  txPause: number;
  /** Poll rounds (napi_poll). */
  polls: number;
  /** Poll rounds that ended by re-arming notifications (napi_complete). */
  pollComplete: number;
  /** Frames refused by send() because the carrier was down. */
  txNoCarrier: number;
  /** Times both sides reached RUN. */
  handshakes: number;
  /** Times we wrote RESET after having been READY or RUN. */
  resets: number;
  /** Protocol violations by the peer, by reason code. */
  violations: Record<string, number>;
  /** Sum of `violations`. */
  violationsTotal: number;
};

export function newNetCounters(): NetCounters {
  return {
    txPackets: 0,
    txBytes: 0,
    rxPackets: 0,
    rxBytes: 0,
    txNotify: 0,
    rxNotify: 0,
    interrupts: 0,
    stateInterrupts: 0,
    txPause: 0,
    polls: 0,
    pollComplete: 0,
    txNoCarrier: 0,
    handshakes: 0,
    resets: 0,
    violations: {},
    violationsTotal: 0,
  };
}
