// Receive-side register semantics shared by every backend: INT_CONTROL,
// one-shot mode (docs/spec.md §1.3) and state-change detection by comparing
// the State Table with a cached copy (docs/spec.md §1.2: there is no status
// register, receivers compare).
import { EventEmitter } from 'node:events';
import { InvalidArgumentError, RefusedError } from '../errors.js';
import { PEER_OUTPUT_VIEW, type EndpointEvents, type SectionSizes } from './endpoint.js';

// Register offsets of BAR0 (docs/spec.md §1.3).
/** Register offset of ID (read-only): this peer's ID (docs/spec.md §1.3). */
export const IVSHM_REG_ID = 0x00;
/** Register offset of MAX_PEERS (read-only) (docs/spec.md §1.3). */
export const IVSHM_REG_MAX_PEERS = 0x04;
/** Register offset of INT_CONTROL: bit 0 enables interrupts (docs/spec.md §1.3). */
export const IVSHM_REG_INT_CONTROL = 0x08;
/** Register offset of DOORBELL: (peer << 16) | vector rings that peer (docs/spec.md §1.3). */
export const IVSHM_REG_DOORBELL = 0x0c;
/** Register offset of STATE: this peer's entry of the State Table (docs/spec.md §1.3). */
export const IVSHM_REG_STATE = 0x10;
/** The register region is one 4 KiB page (Jailhouse's small BAR0). */
export const IVSHM_REG_REGION_SIZE = 0x1000;

function checkRegisterOffset(offset: number): number {
  if (!Number.isInteger(offset) || offset < 0 || offset >= IVSHM_REG_REGION_SIZE || offset % 4 !== 0) {
    throw new InvalidArgumentError(`register offset ${offset} is not an aligned 32-bit offset inside the 4 KiB register region`);
  }
  return offset;
}

/** Cumulative counters of a link endpoint (doorbells sent, received, dropped). */
export interface EndpointCounters {
  /** Delivered interrupts per vector. */
  interrupts: number[];
  /** Interrupts dropped because INT_CONTROL was 0 (never replayed, docs/spec.md §1.4). */
  suppressed: number;
  doorbellsSent: number;
  /** Doorbells dropped: absent target or vector out of range (docs/spec.md §1.4). */
  doorbellsDropped: number;
  stateWrites: number;
}

export abstract class EndpointBase extends EventEmitter<EndpointEvents> {
  abstract readonly id: number;
  abstract readonly maxPeers: number;
  abstract readonly vectors: number;
  abstract readonly protocol: number;
  abstract readonly sizes: SectionSizes;
  abstract readonly name: string;
  abstract peerState(peer: number): number;
  abstract [PEER_OUTPUT_VIEW](peer: number): Uint8Array | null;

  /** INT_CONTROL bit 0; reset value 0 (docs/spec.md §1.3), but a library user expects events, so connect() enables it. */
  intControl = true;
  /** Privileged Control bit 0. */
  oneShot = false;
  readonly counters: EndpointCounters;
  private stateCache: number[] = [];

  constructor(vectors: number) {
    super();
    this.counters = { interrupts: new Array<number>(vectors).fill(0), suppressed: 0, doorbellsSent: 0, doorbellsDropped: 0, stateWrites: 0 };
  }

  /** Take the current table as the baseline for change detection. */
  protected primeStateCache(): void {
    this.stateCache = Array.from({ length: this.maxPeers }, (_, k) => this.peerState(k));
  }

  /** Deliver an interrupt that arrived on vector `vector` from `from` (-1 = broker). */
  protected deliver(vector: number, from: number, count: number): void {
    if (!this.intControl) {
      this.counters.suppressed += count;
      return;
    }
    // One-shot: the device clears INT_CONTROL on each delivery (docs/spec.md §1.3).
    if (this.oneShot) this.intControl = false;
    this.counters.interrupts[vector] = (this.counters.interrupts[vector] ?? 0) + 1;
    if (vector === 0) this.scanStateTable();
    this.emit('interrupt', { vector, from, count });
  }

  /** Emit 'state' for every entry that differs from the cache. */
  protected scanStateTable(): void {
    for (let k = 0; k < this.maxPeers; k++) {
      const value = this.peerState(k);
      const previous = this.stateCache[k] ?? 0;
      if (value !== previous) {
        this.stateCache[k] = value;
        if (k !== this.id) this.emit('state', { peer: k, value, previous });
      }
    }
  }

  abstract readonly state: number;
  abstract setState(value: number): void;
  abstract ring(peer: number, vector: number): boolean;

  /**
   * The register region (BAR0) as a guest sees it (docs/spec.md §1.3):
   * aligned 32-bit accesses only; unbacked offsets read 0 and ignore writes;
   * DOORBELL reads 0.
   */
  readRegister(offset: number): number {
    switch (checkRegisterOffset(offset)) {
      case IVSHM_REG_ID:
        return this.id;
      case IVSHM_REG_MAX_PEERS:
        return this.maxPeers;
      case IVSHM_REG_INT_CONTROL:
        return this.intControl ? 1 : 0;
      case IVSHM_REG_STATE:
        return this.state;
      default:
        return 0;
    }
  }

  writeRegister(offset: number, value: number): void {
    value = value >>> 0;
    switch (checkRegisterOffset(offset)) {
      case IVSHM_REG_INT_CONTROL:
        this.intControl = (value & 1) === 1;
        return;
      case IVSHM_REG_DOORBELL:
        // bits 0-15 vector, bits 16-31 target ID
        this.ring(value >>> 16, value & 0xffff);
        return;
      case IVSHM_REG_STATE:
        this.setState(value);
        return;
      default:
        return; // read-only or unbacked: writes are ignored
    }
  }

  /** Copy bytes out of peer k's output section (k may be this peer). */
  readOutput(peer: number, offset: number, length: number): Buffer {
    this.checkPeerIndex(peer, 'read');
    const view = this[PEER_OUTPUT_VIEW](peer);
    if (!view) throw new RefusedError(`peer ${peer} is not on link ${this.name}`);
    return this.copyOut(view, offset, length, `read of peer ${peer}'s output section`);
  }

  stateTable(): number[] {
    return Array.from({ length: this.maxPeers }, (_, k) => this.peerState(k));
  }

  protected checkPeerIndex(peer: number, what: string): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.maxPeers) {
      throw new InvalidArgumentError(`${what}: peer ${peer} is out of range 0..${this.maxPeers - 1} on link ${this.name}`);
    }
  }

  protected checkStateValue(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new InvalidArgumentError(`state ${value} is not a 32-bit unsigned value`);
    }
  }

  /** Bounds-checked copy out of a section view. */
  protected copyOut(view: Uint8Array, offset: number, length: number, what: string): Buffer {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset > view.byteLength - length) {
      throw new InvalidArgumentError(`${what}: range ${offset}+${length} is outside the ${view.byteLength}-byte section`);
    }
    return Buffer.from(view.subarray(offset, offset + length));
  }
}
