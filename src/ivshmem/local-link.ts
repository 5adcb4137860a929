// An in-process ivshmem link: every endpoint lives in this process and the
// sections are plain ArrayBuffers. It has no isolation (any code in the
// process can write anything) and exists so protocol layers can be tested
// and used between components of one program, like iceoryx2's `local`
// service variant. Doorbells are delivered asynchronously (setImmediate) and
// coalesced per (sender, receiver, vector), as an eventfd would.
import { ClosedError, RefusedError } from '../errors.js';
import { PEER_OUTPUT_VIEW, type IvshmemEndpoint, type SectionSizes } from './endpoint.js';
import { EndpointBase } from './endpoint-base.js';
import { resolveLinkParams, type LinkParams } from './params.js';

/** Parameters of a `LocalLink` (the same as a broker link's). */
export interface LocalLinkOptions {
  name?: string;
  peers: number;
  outputSize: number | string;
  vectors?: number;
  protocol?: number;
  stateSize?: number | string;
  rwSize?: number | string;
}

/** An in-process link with the same endpoint API as a broker link and no isolation: for tests and for components inside one program. */
export class LocalLink {
  readonly params: LinkParams;
  /** State Table, written only through setState (the "broker" role). */
  readonly table: Uint32Array;
  readonly rw: Buffer | null;
  readonly endpoints = new Map<number, LocalEndpoint>();
  readonly outputs = new Map<number, Buffer>();

  constructor(opts: LocalLinkOptions) {
    this.params = resolveLinkParams({ name: 'local', ...opts });
    this.table = new Uint32Array(this.params.stateSize / 4);
    this.rw = this.params.rwSize ? Buffer.alloc(this.params.rwSize) : null;
  }

  /** Join with the requested ID or the lowest free one. */
  join(id?: number): LocalEndpoint {
    const { peers } = this.params;
    if (id === undefined) {
      id = Array.from({ length: peers }, (_, k) => k).find((k) => !this.endpoints.has(k));
      if (id === undefined) throw new RefusedError(`link ${this.params.name} is full (${peers} peers)`);
    } else if (!Number.isInteger(id) || id < 0 || id >= peers) {
      throw new RefusedError(`peer ID ${id} is out of range 0..${peers - 1} on link ${this.params.name}`);
    } else if (this.endpoints.has(id)) {
      throw new RefusedError(`peer ID ${id} is already taken on link ${this.params.name}`);
    }
    // A new output section per join: a restarted peer starts from zeroes.
    const out = Buffer.alloc(this.params.outputSize);
    this.outputs.set(id, out);
    const ep = new LocalEndpoint(this, id, out);
    this.endpoints.set(id, ep);
    for (const [k, other] of this.endpoints) if (k !== id) other.notePeerJoined(id);
    return ep;
  }

  /** Remove peer `id`: its state becomes 0 and the others are rung on vector 0 if it was non-zero. */
  leave(id: number, reason: string): void {
    if (!this.endpoints.delete(id)) return;
    this.outputs.delete(id);
    const was = this.table[id]!;
    this.table[id] = 0;
    for (const other of this.endpoints.values()) {
      other.notePeerGone(id, reason);
      if (was !== 0) other.raise(0, -1);
    }
  }

  writeState(id: number, value: number): void {
    const was = this.table[id]!;
    this.table[id] = value;
    if (was !== value) for (const [k, other] of this.endpoints) if (k !== id) other.raise(0, -1);
  }
}

/** One peer of a `LocalLink`. */
export class LocalEndpoint extends EndpointBase implements IvshmemEndpoint {
  readonly id: number;
  readonly maxPeers: number;
  readonly vectors: number;
  readonly protocol: number;
  readonly sizes: SectionSizes;
  readonly name: string;
  readonly isolated = false;
  readonly output: Buffer;
  readonly rw: Buffer | null;
  closed = false;
  private readonly link: LocalLink;
  private readonly pending = new Map<string, { vector: number; from: number; count: number }>();
  private flushScheduled = false;

  constructor(link: LocalLink, id: number, output: Buffer) {
    super(link.params.vectors);
    this.link = link;
    this.id = id;
    this.maxPeers = link.params.peers;
    this.vectors = link.params.vectors;
    this.protocol = link.params.protocol;
    this.sizes = { state: link.params.stateSize, rw: link.params.rwSize, output: link.params.outputSize };
    this.name = link.params.name;
    this.output = output;
    this.rw = link.rw;
    this.primeStateCache();
  }

  get state(): number {
    return this.link.table[this.id]!;
  }
  setState(value: number): void {
    this.checkStateValue(value);
    if (this.closed) throw new ClosedError(`peer ${this.id} of link ${this.name} is closed`);
    this.counters.stateWrites++;
    this.link.writeState(this.id, value);
  }
  peerState(peer: number): number {
    return this.link.table[peer] ?? 0;
  }
  peers(): number[] {
    return [...this.link.endpoints.keys()].sort((a, b) => a - b);
  }
  [PEER_OUTPUT_VIEW](peer: number): Uint8Array | null {
    return this.link.outputs.get(peer) ?? null;
  }
  ring(peer: number, vector: number): boolean {
    const target = this.link.endpoints.get(peer);
    if (this.closed || !target || !Number.isInteger(vector) || vector < 0 || vector >= this.vectors) {
      this.counters.doorbellsDropped++;
      return false;
    }
    this.counters.doorbellsSent++;
    target.raise(vector, this.id);
    return true;
  }
  /** @internal called by the link */
  raise(vector: number, from: number): void {
    if (this.closed) return;
    const key = `${vector}:${from}`;
    const p = this.pending.get(key);
    if (p) p.count++;
    else this.pending.set(key, { vector, from, count: 1 });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        const batch = [...this.pending.values()];
        this.pending.clear();
        for (const b of batch) if (!this.closed) this.deliver(b.vector, b.from, b.count);
      });
    }
  }
  /** @internal */
  notePeerJoined(peer: number): void {
    this.emit('peer-joined', { peer });
  }
  /** @internal */
  notePeerGone(peer: number, reason: string): void {
    this.emit('peer-gone', { peer, reason });
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.link.leave(this.id, 'left');
    this.emit('close', { reason: 'left the link' });
  }
}
