// What a cell sees of an ivshmem 2.0 link: the register set of the device
// (docs/spec.md §1.3) and the sections of the shared memory region
// (§1.1). Protocol layers (virtio, net, channel) program against this
// interface only, so they run unchanged over the cross-process broker link
// (device.ts), the in-process link (local-link.ts) and QEMU's v1 protocol
// (qemu/client.ts).
import { EventEmitter } from 'node:events';

/** Sizes in bytes of a link's State Table, R/W section and each output section. */
export interface SectionSizes {
  /** State Table bytes (page-rounded). */
  readonly state: number;
  /** R/W section bytes (page-rounded, may be 0). */
  readonly rw: number;
  /** Bytes of each output section (page-rounded, may be 0). */
  readonly output: number;
}

/** A doorbell received: the vector, the sending peer and how many rings were coalesced. */
export interface InterruptEvent {
  readonly vector: number;
  /** Sender peer ID, or -1 for a state-change interrupt raised by the broker. */
  readonly from: number;
  /** Doorbells coalesced into this delivery (eventfd counter). */
  readonly count: number;
}

/** The events every link endpoint emits (interrupt, state, peer-joined, peer-gone, close). */
export interface EndpointEvents {
  /** A delivered interrupt (INT_CONTROL enabled). */
  interrupt: [InterruptEvent];
  /** Peer `id` changed its State Table entry (seen on a delivered vector-0 interrupt). */
  state: [{ peer: number; value: number; previous: number }];
  /** Peer `id` joined (its output section is now mapped). */
  'peer-joined': [{ peer: number }];
  /** Peer `id` left or died; its output section view is gone. */
  'peer-gone': [{ peer: number; reason: string }];
  /** The link itself is gone (broker stopped, close()). */
  close: [{ reason: string }];
}

/**
 * Key of the method that returns peer k's output section in place (read-only
 * bytes, or null if k is not on the link). Protocol layers of this package
 * (channels, ivshmem-net) read through it; it is not part of the public API
 * and not exported from the package: writing through the view is a SIGSEGV
 * on a real link, and a symbol keeps it out of autocompletion and casual use.
 */
export const PEER_OUTPUT_VIEW: unique symbol = Symbol.for('ivshm.peerOutputView');

/**
 * An ivshmem 2.0 peer device. Read-only sections are never exposed as
 * writable JS views: `readOutput()` copies; protocol layers of this package
 * read in place through the internal `[PEER_OUTPUT_VIEW]()`.
 */
export interface IvshmemEndpoint extends EventEmitter<EndpointEvents> {
  /** ID register. */
  readonly id: number;
  /** MAX_PEERS register. */
  readonly maxPeers: number;
  /** Interrupt vectors per peer (1..16). */
  readonly vectors: number;
  /** Protocol from the vendor capability (class code bits). */
  readonly protocol: number;
  readonly sizes: SectionSizes;
  /** Link name, for logs. */
  readonly name: string;
  /** Whether sections are isolated by the kernel (false for QEMU v1 and in-process links). */
  readonly isolated: boolean;

  /** Own output section, writable. Empty when the output size is 0. */
  readonly output: Buffer;
  /** The common R/W section, writable by all peers (null when its size is 0). */
  readonly rw: Buffer | null;

  /** Peers currently on the link (including this one). */
  peers(): number[];
  /** Internal: read-only bytes of peer k's output section, or null if k is not on the link. Never write. */
  [PEER_OUTPUT_VIEW](peer: number): Uint8Array | null;
  /** Copy `length` bytes at `offset` of peer k's output section (k may be this peer). */
  readOutput(peer: number, offset: number, length: number): Buffer;

  /** STATE register (own value). */
  readonly state: number;
  /** Write STATE: stored in the State Table, vector 0 raised on the others if changed. */
  setState(value: number): void;
  /** State Table entry of peer k (0 for absent peers). */
  peerState(peer: number): number;
  /** The whole State Table as numbers (MAX_PEERS entries). */
  stateTable(): number[];

  /** DOORBELL register: returns false if dropped (absent peer, vector out of range, closed). */
  ring(peer: number, vector: number): boolean;
  /** INT_CONTROL bit 0. */
  intControl: boolean;
  /** Privileged Control bit 0: one-shot interrupt mode. */
  oneShot: boolean;

  close(): void;
  readonly closed: boolean;
}
