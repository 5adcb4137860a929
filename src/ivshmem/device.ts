// The peer side of a broker link: what an ivshmem 2.0 PCI device gives a
// cell (docs/spec.md §1.3 registers, §1.1 sections), across processes.
import { ClosedError, IvshmError, PeerGoneError, ProtocolError, RefusedError } from '../errors.js';
import {
  closeFd,
  eventfdDrain,
  eventfdSignal,
  mapShared,
  receiveMessage,
  sendMessage,
  unixConnect,
  watchReadable,
  errnoName,
  type Mapping,
  type Watch,
} from '../sys/index.js';
import {
  CONTROL_VERSION,
  decodeMessage,
  encodeHello,
  encodeMapped,
  encodeSetState,
  goneReasonText,
  initFdCount,
  MSG,
  peerJoinedFdCount,
  type Init,
  type Message,
} from './control-protocol.js';
import { cellConnectOptions } from './cell-links.js';
import { PEER_OUTPUT_VIEW, type IvshmemEndpoint, type SectionSizes } from './endpoint.js';
import { EndpointBase } from './endpoint-base.js';
import { constants } from 'node:os';
import { memfdName } from './layout.js';
import { checkLinkParams, problemText } from './params.js';
import { PAGE } from '../units.js';

const EAGAIN = constants.errno.EAGAIN;

/** Where and as whom to join a broker link. */
export interface ConnectOptions {
  /** Broker control socket path. */
  socket: string;
  /** Requested peer ID; the lowest free one when omitted. */
  id?: number;
  /** Token the broker may require for this ID (supervised systems). */
  token?: string;
  /** Give up joining after this many ms (default 10000). */
  timeoutMs?: number;
}

interface PeerLink {
  output: Mapping;
  view: Uint8Array;
  tx: number[];
  rx: number[];
  watches: Watch[];
}

/**
 * Connect to a broker and join its link. Inside a cell started by `ivshm up`,
 * call it with no argument (the cell's only link) or with a link name: the
 * socket, ID and token come from IVSHM_LINKS.
 */
export function connect(opts?: ConnectOptions | string): Promise<Device> {
  if (opts === undefined || typeof opts === 'string') {
    try {
      return Device.join(cellConnectOptions(opts));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return Device.join(opts);
}

/** A joined peer of a broker link: its ID, sections, STATE, doorbells and interrupts, like an ivshmem 2.0 PCI device (docs/spec.md §1.3). Get one from `connect()`. */
export class Device extends EndpointBase implements IvshmemEndpoint {
  readonly id: number;
  readonly maxPeers: number;
  readonly vectors: number;
  readonly protocol: number;
  readonly sizes: SectionSizes;
  readonly name: string;
  readonly isolated = true;
  readonly output: Buffer;
  readonly rw: Buffer | null;
  closed = false;

  private readonly sock: number;
  private sockWatch: Watch | null = null;
  private readonly stateMap: Mapping;
  private readonly table: Uint32Array;
  private readonly outMap: Mapping;
  private readonly rwMap: Mapping | null;
  private readonly stateBell: number;
  private readonly selfBells: number[];
  private readonly ownWatches: Watch[] = [];
  private readonly links = new Map<number, PeerLink>();
  private stateValue = 0;
  private readonly outbox: Buffer[] = [];
  private flushTimer: NodeJS.Timeout | null = null;

  private constructor(sock: number, init: Init, fds: number[]) {
    super(init.vectors);
    this.sock = sock;
    this.id = init.id;
    this.maxPeers = init.peers;
    this.vectors = init.vectors;
    this.protocol = init.protocol;
    this.name = init.name;
    this.sizes = { state: init.stateSize, rw: init.rwSize, output: init.outputSize };
    const [stateFd, outFd, stateBell, ...rest] = fds as [number, number, number, ...number[]];
    this.selfBells = rest.slice(0, init.vectors);
    const rwFd = init.rwSize > 0 ? rest[init.vectors]! : -1;
    this.stateBell = stateBell;
    const mapped: Mapping[] = [];
    try {
      this.stateMap = mapShared(stateFd, init.stateSize, false, memfdName(init.name, 'state'));
      mapped.push(this.stateMap);
      this.outMap = mapShared(outFd, init.outputSize || PAGE, true, memfdName(init.name, `out${init.id}`));
      mapped.push(this.outMap);
      this.rwMap = rwFd >= 0 ? mapShared(rwFd, init.rwSize, true, memfdName(init.name, 'rw')) : null;
    } catch (err) {
      for (const m of mapped) m.unmap();
      throw err;
    } finally {
      // The mappings keep the memory; the fds are no longer needed.
      closeFd(stateFd);
      closeFd(outFd);
      if (rwFd >= 0) closeFd(rwFd);
    }
    this.table = new Uint32Array(this.stateMap.buffer, 0, init.peers);
    this.output = Buffer.from(this.outMap.buffer, 0, init.outputSize);
    this.rw = this.rwMap ? Buffer.from(this.rwMap.buffer) : null;
    this.primeStateCache();
  }

  static join(opts: ConnectOptions): Promise<Device> {
    let sock: number;
    try {
      sock = unixConnect(opts.socket, 'seqpacket');
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = opts.timeoutMs ?? 10000;
    return new Promise<Device>((resolve, reject) => {
      let device: Device | null = null;
      let settled = false;
      const finish = (err: IvshmError | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          watch.close();
          if (device) device.teardown();
          else closeFd(sock);
          reject(err);
        } else {
          watch.close();
          // Messages after SYNCED are still in the socket; attach() reads them.
          device!.attach();
          resolve(device!);
        }
      };
      const timer = setTimeout(() => finish(new ProtocolError(`no answer from the broker on ${opts.socket} within ${timeoutMs} ms`)), timeoutMs);
      const watch = watchReadable(sock, () => {
        for (;;) {
          if (settled) return;
          const r = receiveMessage(sock);
          if (r.kind === 'again') return;
          if (r.kind === 'eof' || r.kind === 'error') {
            return finish(new PeerGoneError(`the broker on ${opts.socket} closed the connection while we joined`));
          }
          try {
            if (r.truncated) throw new ProtocolError('broker message was truncated');
            const m = decodeMessage(r.data);
            if (!device) {
              if (m.type === MSG.REFUSED) {
                for (const f of r.fds) closeFd(f);
                return finish(new RefusedError(`broker refused to join: ${m.text}`));
              }
              if (m.type !== MSG.INIT) throw new ProtocolError(`expected INIT, got message type 0x${m.type.toString(16)}`);
              Device.checkInit(m.init, r.fds.length);
              device = new Device(sock, m.init, r.fds);
              if (sendMessage(sock, encodeMapped())) throw new ProtocolError('could not confirm the mapping to the broker');
            } else if (m.type === MSG.SYNCED) {
              return finish(null);
            } else {
              device.onMessage(m, r.fds);
            }
          } catch (err) {
            for (const f of r.fds) closeFd(f);
            if (err instanceof IvshmError) return finish(err);
            throw err;
          }
        }
      });
      const hello = encodeHello({ version: CONTROL_VERSION, id: opts.id ?? -1, token: opts.token ?? '' });
      const e = sendMessage(sock, hello);
      if (e) finish(new ProtocolError(`could not send HELLO to ${opts.socket}: ${errnoName(e)}`));
    });
  }

  /**
   * The broker is trusted, but its message is still checked before use, and
   * before anything is mapped: a view above the largest section aborts the
   * process instead of throwing (docs/spec.md §1.5, §2).
   */
  private static checkInit(init: Init, nfds: number): void {
    const bad = (what: string) => {
      throw new ProtocolError(`broker sent a bad INIT: ${what}`);
    };
    if (init.version !== CONTROL_VERSION) bad(`version ${init.version}`);
    const { problems } = checkLinkParams(init, { pages: 'exact' });
    if (problems.length) bad(problemText(problems));
    if (init.id >= init.peers) bad(`ID ${init.id}`);
    if (nfds !== initFdCount(init.vectors, init.rwSize)) bad(`${nfds} fds`);
  }

  // ---- after joining ----

  private attach(): void {
    this.sockWatch = watchReadable(this.sock, () => this.onSocket());
    this.ownWatches.push(
      watchReadable(this.stateBell, () => {
        const n = eventfdDrain(this.stateBell);
        if (n) this.deliver(0, -1, n);
      }),
    );
    this.selfBells.forEach((fd, v) =>
      this.ownWatches.push(
        watchReadable(fd, () => {
          const n = eventfdDrain(fd);
          if (n) this.deliver(v, this.id, n);
        }),
      ),
    );
  }

  private onSocket(): void {
    for (let i = 0; i < 64 && !this.closed; i++) {
      const r = receiveMessage(this.sock);
      if (r.kind === 'again') return;
      if (r.kind === 'eof' || r.kind === 'error') return this.shutdown('the broker closed the link');
      try {
        if (r.truncated) throw new ProtocolError('broker message was truncated');
        this.onMessage(decodeMessage(r.data), r.fds);
      } catch (err) {
        for (const f of r.fds) closeFd(f);
        if (!(err instanceof IvshmError)) throw err;
        return this.shutdown(`broker protocol error: ${err.message}`);
      }
    }
  }

  private onMessage(m: Message, fds: number[]): void {
    switch (m.type) {
      case MSG.PEER_JOINED: {
        const V = this.vectors;
        if (fds.length !== peerJoinedFdCount(V)) throw new ProtocolError(`PEER_JOINED carried ${fds.length} fds, expected ${peerJoinedFdCount(V)}`);
        if (m.id >= this.maxPeers || m.id === this.id) throw new ProtocolError(`PEER_JOINED for bad ID ${m.id}`);
        this.dropPeer(m.id);
        const [outFd, ...bells] = fds as [number, ...number[]];
        let output: Mapping;
        try {
          output = mapShared(outFd, this.sizes.output || PAGE, false, memfdName(this.name, `out${m.id}`));
        } finally {
          closeFd(outFd);
        }
        const tx = bells.slice(0, V);
        const rx = bells.slice(V);
        const from = m.id;
        const watches = rx.map((fd, v) =>
          watchReadable(fd, () => {
            const n = eventfdDrain(fd);
            if (n) this.deliver(v, from, n);
          }),
        );
        this.links.set(m.id, { output, view: new Uint8Array(output.buffer, 0, this.sizes.output), tx, rx, watches });
        this.emit('peer-joined', { peer: m.id });
        return;
      }
      case MSG.PEER_GONE: {
        for (const f of fds) closeFd(f);
        if (this.dropPeer(m.id)) this.emit('peer-gone', { peer: m.id, reason: goneReasonText(m.reason) });
        return;
      }
      default:
        for (const f of fds) closeFd(f);
        throw new ProtocolError(`unexpected message type 0x${m.type.toString(16)} from the broker`);
    }
  }

  private dropPeer(id: number): boolean {
    const l = this.links.get(id);
    if (!l) return false;
    this.links.delete(id);
    for (const w of l.watches) w.close();
    for (const f of [...l.tx, ...l.rx]) closeFd(f);
    l.output.unmap();
    return true;
  }

  // ---- registers ----

  get state(): number {
    return this.stateValue;
  }

  /** STATE register write: the broker stores it and raises vector 0 on the others if it changed. */
  setState(value: number): void {
    this.checkStateValue(value);
    if (this.closed) throw new ClosedError(`peer ${this.id} of link ${this.name} is closed`);
    this.stateValue = value;
    this.counters.stateWrites++;
    this.send(encodeSetState(value));
  }

  private send(msg: Buffer): void {
    this.outbox.push(msg);
    if (!this.flushTimer) this.flush();
  }

  private flush(): void {
    this.flushTimer = null;
    while (this.outbox.length && !this.closed) {
      const e = sendMessage(this.sock, this.outbox[0]!);
      if (e === 0) this.outbox.shift();
      else if (e === EAGAIN) {
        // The broker is slow; retry soon, in order, rather than block the loop.
        this.flushTimer = setTimeout(() => this.flush(), 1);
        return;
      } else {
        this.shutdown(`lost the broker (${errnoName(e)})`);
        return;
      }
    }
  }

  peerState(peer: number): number {
    if (this.closed || peer < 0 || peer >= this.maxPeers) return 0;
    return Atomics.load(this.table, peer);
  }

  peers(): number[] {
    return [this.id, ...this.links.keys()].sort((a, b) => a - b);
  }

  [PEER_OUTPUT_VIEW](peer: number): Uint8Array | null {
    if (this.closed) return null;
    if (peer === this.id) return this.output;
    return this.links.get(peer)?.view ?? null;
  }


  /** DOORBELL: dropped (false) for an absent target or a vector out of range (docs/spec.md §1.4). */
  ring(peer: number, vector: number): boolean {
    let fd: number | undefined;
    if (!this.closed && Number.isInteger(vector) && vector >= 0 && vector < this.vectors) {
      fd = peer === this.id ? this.selfBells[vector] : this.links.get(peer)?.tx[vector];
    }
    if (fd === undefined || !eventfdSignal(fd)) {
      this.counters.doorbellsDropped++;
      return false;
    }
    this.counters.doorbellsSent++;
    return true;
  }

  // ---- lifecycle ----

  /** Leave the link: the broker sets our state to 0 and tells the others. */
  close(): void {
    this.shutdown('left the link');
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.teardown();
    this.emit('close', { reason });
  }

  private teardown(): void {
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.sockWatch?.close();
    closeFd(this.sock);
    for (const id of [...this.links.keys()]) this.dropPeer(id);
    for (const w of this.ownWatches) w.close();
    for (const f of [this.stateBell, ...this.selfBells]) closeFd(f);
    this.stateMap.unmap();
    this.outMap.unmap();
    this.rwMap?.unmap();
  }
}
