// This peer's own output section (docs/spec-channel.md §2). Shared by every
// channel object on one endpoint (a Channel and Subscribers may coexist: the
// ring belongs to one owner, the slots are per remote peer).
import { randomInt } from 'node:crypto';
import { InvalidArgumentError } from '../../errors.js';
import type { IvshmemEndpoint } from '../../ivshmem/endpoint.js';
import {
  CH_MAGIC,
  CH_ROLE_NONE,
  CH_STATE_READY,
  CH_VERSION,
  geometry,
  H_HEAD,
  H_MAGIC,
  H_MAX_PAYLOAD,
  H_RING_OFFSET,
  H_RING_SIZE,
  H_ROLE,
  H_SESSION,
  H_SLOTS,
  H_TAIL,
  H_VERSION,
  slotIndex,
  SLOTS_OFFSET,
  SLOT_SIZE,
  words,
  type SectionGeometry,
} from '../layout.js';

const sections = new WeakMap<IvshmemEndpoint, OwnSection>();

export class OwnSection {
  readonly ep: IvshmemEndpoint;
  readonly geo: SectionGeometry;
  readonly bytes: Buffer;
  readonly w: Int32Array;
  session = 0;
  role = CH_ROLE_NONE;
  private users = 0;

  static of(ep: IvshmemEndpoint): OwnSection {
    let s = sections.get(ep);
    if (!s) {
      s = new OwnSection(ep);
      sections.set(ep, s);
    }
    return s;
  }

  private constructor(ep: IvshmemEndpoint) {
    if (ep.closed) throw new InvalidArgumentError(`peer ${ep.id} of link ${ep.name} is closed`);
    this.ep = ep;
    this.geo = geometry(ep.output.byteLength, ep.maxPeers);
    this.bytes = ep.output;
    this.w = words(ep.output, `own output section of peer ${ep.id}`);
    this.renew();
  }

  /**
   * Start a new session (docs/spec-channel.md §6): a fresh header, zeroed
   * slots and an empty ring, then STATE = session | READY.
   */
  renew(): void {
    const old = this.session;
    let s = 0;
    while (s === 0 || s === old) s = randomInt(1, 0x1000000) << 8;
    const w = this.w;
    // Readers see the magic last: a half-written header is never valid.
    Atomics.store(w, H_MAGIC, 0);
    this.bytes.fill(0, 4, SLOTS_OFFSET + this.geo.slots * SLOT_SIZE);
    Atomics.store(w, H_VERSION, CH_VERSION);
    Atomics.store(w, H_SESSION, s >>> 0);
    Atomics.store(w, H_RING_OFFSET, this.geo.ringOffset);
    Atomics.store(w, H_RING_SIZE, this.geo.ringSize);
    Atomics.store(w, H_ROLE, this.role);
    Atomics.store(w, H_SLOTS, this.geo.slots);
    Atomics.store(w, H_MAX_PAYLOAD, this.geo.maxPayload);
    Atomics.store(w, H_TAIL, 0);
    Atomics.store(w, H_HEAD, 0);
    Atomics.store(w, H_MAGIC, CH_MAGIC | 0);
    this.session = s >>> 0;
    this.publishState();
  }

  publishState(): void {
    if (!this.ep.closed) this.ep.setState((this.session | CH_STATE_READY) >>> 0);
  }

  claimRing(role: number, what: string): void {
    if (this.role !== CH_ROLE_NONE && this.role !== role) {
      throw new InvalidArgumentError(`${what}: the output section of peer ${this.ep.id} already carries another ring (role ${this.role}); use one Channel or Publisher per endpoint`);
    }
    if (this.role === role) throw new InvalidArgumentError(`${what}: peer ${this.ep.id} already has a ${role === 1 ? 'Channel' : 'Publisher'}; use one per endpoint`);
    // Only remembered here: the caller's renew() publishes it together with a
    // new session. Writing it into the live header would show peers a session
    // that already carries the ring but is about to be replaced (a peer that
    // attached to it would see a spurious restart a moment later).
    this.role = role;
  }

  releaseRing(): void {
    this.role = CH_ROLE_NONE;
    if (!this.ep.closed) Atomics.store(this.w, H_ROLE, CH_ROLE_NONE);
  }

  slot(peer: number, field: number): number {
    return Atomics.load(this.w, slotIndex(peer, field));
  }
  setSlot(peer: number, field: number, value: number): void {
    Atomics.store(this.w, slotIndex(peer, field), value | 0);
  }
  clearSlot(peer: number): void {
    this.bytes.fill(0, SLOTS_OFFSET + peer * SLOT_SIZE, SLOTS_OFFSET + (peer + 1) * SLOT_SIZE);
  }

  acquire(): void {
    this.users++;
  }
  release(): void {
    if (--this.users === 0) sections.delete(this.ep);
  }
}
