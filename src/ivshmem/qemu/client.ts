// A client of QEMU's ivshmem server protocol v0 (docs/qemu.md): a Node program joins a QEMU-protocol server (QEMU's ivshmem-server or
// `ivshm qemu-server`) as a peer of ivshmem-doorbell VMs, and gets an
// IvshmemEndpoint, so application code moves between native links and v1.
//
// How v1 maps onto the endpoint (docs/qemu.md):
// - one shared region, read-write for every peer: `rw`, `output` and every
//   peer's view are the same bytes; `readOutput(peer, ...)` ignores `peer`;
// - `isolated` is false: any peer can write anything, the server sees all;
// - no State Table: `state`/`peerState()` read 0, `stateTable()` is empty and
//   `setState()` throws IVSHM_ERR_NOT_SUPPORTED rather than pretend;
// - interrupts come per vector on our own eventfds; eventfds do not say who
//   rang (docs/qemu.md §5), so `from` is always -1;
// - INT_CONTROL and one-shot are honoured on the receiving side (EndpointBase).
//
// The server is trusted with memory (it hands out the one file), but nothing
// it sends can crash this process: a malformed handshake rejects
// connectQemu() with a ProtocolError, a malformed message later closes the
// endpoint with the reason in `close` and in `protocolError`.
import { ClosedError, InvalidArgumentError, IvshmError, NotSupportedError, OsError, ProtocolError, TimeoutError } from '../../errors.js';
import {
  closeFd,
  E,
  errnoName,
  eventfdDrain,
  eventfdSignal,
  fdSize,
  mapShared,
  setNonBlocking,
  shutdownSocket,
  unixConnect,
  watchReadable,
  type Mapping,
  type Watch,
} from '../../sys/index.js';
import { fdTarget } from '../../sys/posix-shm.js';
import { PEER_OUTPUT_VIEW, type IvshmemEndpoint, type SectionSizes } from '../endpoint.js';
import { EndpointBase } from '../endpoint-base.js';
import { IVSHMEM_MAX_ID, IVSHMEM_MAX_VECTORS, IVSHMEM_PROTOCOL_VERSION, IVSHMEM_SHM_MSG, QemuMessageReader, type QemuMessage } from './protocol.js';
import { MAX_SECTION_SIZE } from '../../units.js';

/** Where to join a QEMU ivshmem v1 server. */
export interface ConnectQemuOptions {
  socket: string;
  /**
   * Vectors this peer expects (the server's -n). The protocol has no
   * end-of-handshake marker: with it, connectQemu resolves once that many
   * own vectors arrived; without it, once at least one arrived and the
   * server has nothing more queued (later ones are still accepted).
   */
  vectors?: number;
  /** Reject if the handshake is not complete by then. Default 10000 ms. */
  timeoutMs?: number;
  /** Link name for logs. Default "qemu:<socket>". */
  name?: string;
}

/** The largest shared memory we map from a server: the one section limit (docs/spec.md §1.5). */
const MAX_SHM = MAX_SECTION_SIZE;

/** Handshake phases of docs/qemu.md §2: version, ID, then shm (+ peer vectors) in any order of peers. */
type Phase = 'version' | 'id' | 'shm' | 'ready';

/**
 * The protocol engine: applies server messages to a peer table. It is
 * separate from the endpoint so the handshake can run before the endpoint
 * (and its listeners) exist.
 */
class QemuSession {
  phase: Phase = 'version';
  id = -1;
  shmFd = -1;
  shmSize = 0;
  /** Eventfds per peer ID, vector index = arrival order (docs/qemu.md §2). */
  readonly peerFds = new Map<number, number[]>();
  /** Peers that got their first vector in the current read batch. */
  joinedInBatch: number[] = [];
  /** Own vectors that arrived in the current read batch. */
  ownAddedInBatch: number[] = [];
  gone: number[] = [];
  ignoredDisconnects = 0;

  /** Apply one message; throws ProtocolError (fds already closed) on a violation. */
  apply(msg: QemuMessage): void {
    const n = msg.fds.length;
    const raw = msg.value;
    if (n > 1) this.violation(msg, `a message (value ${raw}) carried ${n} fds; the protocol allows at most one`);
    const fd = n === 1 ? msg.fds[0]! : -1;
    switch (this.phase) {
      case 'version':
        if (fd >= 0) this.violation(msg, `the version message carried an fd; expected none`);
        if (raw !== BigInt(IVSHMEM_PROTOCOL_VERSION)) {
          this.violation(msg, `server speaks ivshmem protocol version ${raw}; this client speaks version ${IVSHMEM_PROTOCOL_VERSION} (QEMU >= 2.5)`);
        }
        this.phase = 'id';
        return;
      case 'id':
        if (fd >= 0) this.violation(msg, `the peer-ID message carried an fd; expected none`);
        if (raw < 0n || raw > BigInt(IVSHMEM_MAX_ID)) this.violation(msg, `server assigned peer ID ${raw}; IDs must be 0..${IVSHMEM_MAX_ID}`);
        this.id = Number(raw);
        this.phase = 'shm';
        return;
    }
    if (raw === BigInt(IVSHMEM_SHM_MSG)) {
      if (this.shmFd >= 0) this.violation(msg, 'server sent a second shared memory message');
      if (fd < 0) this.violation(msg, 'the shared memory message (-1) carried no fd');
      this.takeShm(fd);
      return;
    }
    if (raw < 0n || raw > BigInt(IVSHMEM_MAX_ID)) this.violation(msg, `message value ${raw} is neither -1 (shm) nor a peer ID 0..${IVSHMEM_MAX_ID}`);
    const peer = Number(raw);
    if (fd < 0) {
      // Disconnect notification (docs/qemu.md §3).
      if (peer === this.id) throw new ProtocolError(`server announced that this peer (${peer}) disconnected`);
      const fds = this.peerFds.get(peer);
      if (!fds) {
        this.ignoredDisconnects++;
        return;
      }
      fds.forEach(closeFd);
      this.peerFds.delete(peer);
      this.gone.push(peer);
      return;
    }
    const target = fdTarget(fd);
    if (target !== 'anon_inode:[eventfd]') this.violation(msg, `the vector fd for peer ${peer} is ${target ?? 'unknown'}, not an eventfd`);
    let fds = this.peerFds.get(peer);
    if (!fds) {
      fds = [];
      this.peerFds.set(peer, fds);
      if (peer !== this.id) this.joinedInBatch.push(peer);
    }
    if (fds.length >= IVSHMEM_MAX_VECTORS) this.violation(msg, `server sent more than ${IVSHMEM_MAX_VECTORS} vectors for peer ${peer}`);
    // Blocking fds would stall the event loop; the kernel shares the flag
    // with the server's copy, which uses EFD_NONBLOCK anyway (docs/qemu.md §5).
    setNonBlocking(fd);
    fds.push(fd);
    if (peer === this.id) this.ownAddedInBatch.push(fds.length - 1);
  }

  private takeShm(fd: number): void {
    const target = fdTarget(fd) ?? '';
    let size: number;
    try {
      size = fdSize(fd);
    } catch {
      closeFd(fd);
      throw new ProtocolError(`the shared memory fd from the server is not a file (${target || 'unknown'})`);
    }
    if (target.startsWith('anon_inode:') || target.startsWith('socket:') || target.startsWith('pipe:')) {
      closeFd(fd);
      throw new ProtocolError(`the shared memory fd from the server is ${target}, not a file`);
    }
    if (size <= 0 || size > MAX_SHM) {
      closeFd(fd);
      throw new ProtocolError(`the shared memory from the server has ${size} bytes; expected 1..${MAX_SHM}`);
    }
    this.shmFd = fd;
    this.shmSize = size;
  }

  private violation(msg: QemuMessage, text: string): never {
    msg.fds.forEach(closeFd);
    throw new ProtocolError(text);
  }

  /** Close every fd held (on failure or close). */
  dispose(): void {
    for (const fds of this.peerFds.values()) fds.forEach(closeFd);
    this.peerFds.clear();
    closeFd(this.shmFd);
    this.shmFd = -1;
  }
}

/** Join a QEMU-protocol ivshmem server. */
export function connectQemu(opts: ConnectQemuOptions): Promise<QemuEndpoint> {
  const socket = opts.socket;
  const want = opts.vectors;
  if (want !== undefined && (!Number.isInteger(want) || want < 1 || want > IVSHMEM_MAX_VECTORS)) {
    return Promise.reject(new InvalidArgumentError(`vectors: ${want} must be an integer in 1..${IVSHMEM_MAX_VECTORS} (the server's vector count)`));
  }
  let sock: number;
  try {
    sock = unixConnect(socket, 'stream');
  } catch (err) {
    // QEMU servers use SOCK_STREAM (docs/qemu.md §1); ivshm brokers use SOCK_SEQPACKET.
    if (err instanceof OsError && err.errno === E.EPROTOTYPE) {
      return Promise.reject(new OsError('connect', err.errno, `connect(${socket}) failed: EPROTOTYPE; this is not a QEMU ivshmem server but probably an ivshm broker: connect without --qemu`));
    }
    if (err instanceof OsError && (err.errno === E.ENOENT || err.errno === E.ECONNREFUSED)) {
      return Promise.reject(new OsError('connect', err.errno, `connect(${socket}) failed: ${errnoName(err.errno)}; is a QEMU ivshmem server (ivshm qemu-server, or QEMU's ivshmem-server) running on this socket?`));
    }
    return Promise.reject(err);
  }
  const session = new QemuSession();
  const reader = new QemuMessageReader(sock);
  return new Promise<QemuEndpoint>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      watch.close();
      reader.dispose();
      session.dispose();
      closeFd(sock);
      reject(err);
    };
    const timeoutMs = opts.timeoutMs ?? 10000;
    const timer = setTimeout(
      () => fail(new TimeoutError(`no complete ivshmem handshake from ${socket} within ${timeoutMs} ms (phase: ${session.phase}); is it a QEMU ivshmem server?`)),
      timeoutMs,
    );
    const watch = watchReadable(sock, () => {
      if (settled) return;
      try {
        for (;;) {
          const r = reader.next();
          if (r.kind === 'message') {
            session.apply(r.msg);
            const own = session.peerFds.get(session.id)?.length ?? 0;
            if (want !== undefined && session.shmFd >= 0 && own >= want) break;
            continue;
          }
          if (r.kind === 'again') break;
          if (r.kind === 'eof') throw new ProtocolError(`server ${socket} closed the connection during the handshake (phase: ${session.phase})`);
          if (r.kind === 'fds-lost') throw new ProtocolError(`fds from ${socket} were lost (MSG_CTRUNC): too many fds in one message, or this process is out of file descriptors`);
          throw new ProtocolError(`reading from ${socket} failed: ${errnoName(r.errno)}`);
        }
      } catch (err) {
        fail(err instanceof IvshmError ? err : new ProtocolError(`handshake with ${socket} failed: ${(err as Error).message}`));
        return;
      }
      const own = session.peerFds.get(session.id)?.length ?? 0;
      if (session.shmFd < 0 || own === 0 || (want !== undefined && own < want)) return;
      settled = true;
      clearTimeout(timer);
      watch.close();
      try {
        resolve(new QemuEndpoint(sock, session, reader, opts.name ?? `qemu:${socket}`));
      } catch (err) {
        reader.dispose();
        session.dispose();
        closeFd(sock);
        reject(err);
      }
    });
  });
}

/** A peer of a QEMU ivshmem v1 server, with the ivshm endpoint API where v1 has an equivalent (docs/qemu.md). */
export class QemuEndpoint extends EndpointBase implements IvshmemEndpoint {
  readonly id: number;
  /** The ID space of v1 (16-bit Doorbell peer field, docs/qemu.md §4). */
  readonly maxPeers = IVSHMEM_MAX_ID + 1;
  readonly protocol = 0;
  readonly sizes: SectionSizes;
  readonly name: string;
  readonly isolated = false;
  /** The one shared region (read-write for every peer). */
  readonly rw: Buffer;
  /** Same bytes as `rw`: v1 has no per-peer output sections. */
  readonly output: Buffer;
  /** The violation that closed this endpoint, if one did. */
  protocolError: ProtocolError | null = null;
  closed = false;
  private readonly sock: number;
  private readonly session: QemuSession;
  private readonly reader: QemuMessageReader;
  private readonly mapping: Mapping;
  private readonly sockWatch: Watch;
  private readonly vectorWatches: Watch[] = [];

  /** @internal built by connectQemu once the handshake is complete */
  constructor(sock: number, session: QemuSession, reader: QemuMessageReader, name: string) {
    super(session.peerFds.get(session.id)!.length);
    this.sock = sock;
    this.session = session;
    this.reader = reader;
    this.id = session.id;
    this.name = name;
    this.mapping = mapShared(session.shmFd, session.shmSize, true, `shared memory of ${name}`);
    this.rw = Buffer.from(this.mapping.buffer);
    this.output = this.rw;
    this.sizes = { state: 0, rw: session.shmSize, output: session.shmSize };
    session.joinedInBatch = [];
    session.gone = [];
    this.watchOwnVectors();
    this.sockWatch = watchReadable(sock, () => this.onServerReadable());
  }

  /** Own vectors received so far (normally the server's -n). */
  get vectors(): number {
    return this.session.peerFds.get(this.id)?.length ?? 0;
  }

  private watchOwnVectors(): void {
    const own = this.session.peerFds.get(this.id) ?? [];
    for (let v = this.vectorWatches.length; v < own.length; v++) {
      const fd = own[v]!;
      this.vectorWatches.push(
        watchReadable(fd, () => {
          const count = eventfdDrain(fd);
          if (count > 0 && !this.closed) this.deliver(v, -1, count);
        }),
      );
    }
    this.session.ownAddedInBatch = [];
  }

  private onServerReadable(): void {
    if (this.closed) return;
    let ended: string | null = null;
    try {
      for (;;) {
        const r = this.reader.next();
        if (r.kind === 'message') {
          this.session.apply(r.msg);
          continue;
        }
        if (r.kind === 'again') break;
        if (r.kind === 'eof') ended = 'server closed the connection';
        else if (r.kind === 'fds-lost') throw new ProtocolError('fds from the server were lost (MSG_CTRUNC)');
        else ended = `reading from the server failed: ${errnoName(r.errno)}`;
        break;
      }
    } catch (err) {
      this.protocolError = err instanceof ProtocolError ? err : new ProtocolError(String((err as Error).message));
      ended = `protocol error: ${this.protocolError.message}`;
    }
    // Events after the whole batch, so a 'peer-joined' listener can ring
    // every vector of the new peer (they arrive as N messages in a row).
    if (this.session.ownAddedInBatch.length) this.watchOwnVectors();
    const joined = this.session.joinedInBatch;
    const gone = this.session.gone;
    this.session.joinedInBatch = [];
    this.session.gone = [];
    for (const peer of gone) this.emit('peer-gone', { peer, reason: 'disconnected from the server' });
    for (const peer of joined) if (this.session.peerFds.has(peer)) this.emit('peer-joined', { peer });
    if (ended) this.shutdown(ended);
  }

  peers(): number[] {
    return [...this.session.peerFds.keys()].sort((a, b) => a - b);
  }

  /** Every peer sees the one region; null only for an ID that is not on the server. */
  [PEER_OUTPUT_VIEW](peer: number): Uint8Array | null {
    return this.session.peerFds.has(peer) && !this.closed ? this.rw : null;
  }

  /** Copy from the one shared region; `peer` is ignored in v1 (there are no output sections). */
  override readOutput(_peer: number, offset: number, length: number): Buffer {
    if (this.closed) throw new ClosedError(`peer ${this.id} of ${this.name} is closed`);
    return this.copyOut(this.rw, offset, length, `read of the shared memory of ${this.name}`);
  }

  /** v1 has no STATE register: always 0. */
  get state(): number {
    return 0;
  }
  setState(_value: number): void {
    throw new NotSupportedError(`QEMU ivshmem v1 (${this.name}) has no State Table; use a native ivshm link for state handshakes, or keep state in the shared memory`,
    );
  }
  /** No State Table in v1: every entry reads 0, as for an absent peer. */
  peerState(_peer: number): number {
    return 0;
  }
  /** No State Table in v1: empty. */
  override stateTable(): number[] {
    return [];
  }
  /** Nothing to scan: v1 has no State Table (vector 0 is an ordinary vector). */
  protected override scanStateTable(): void {}

  /** Write 1 to `peer`'s eventfd of `vector` (docs/qemu.md §5); false if the peer or vector is unknown, or closed. */
  ring(peer: number, vector: number): boolean {
    const fd = this.closed ? undefined : this.session.peerFds.get(peer)?.[vector];
    if (fd === undefined || !Number.isInteger(vector)) {
      this.counters.doorbellsDropped++;
      return false;
    }
    if (!eventfdSignal(fd)) {
      this.counters.doorbellsDropped++;
      return false;
    }
    this.counters.doorbellsSent++;
    return true;
  }

  /** Peer IDs whose disconnect notification named an unknown peer (ignored). */
  get ignoredDisconnects(): number {
    return this.session.ignoredDisconnects;
  }

  close(): void {
    this.shutdown('closed');
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.sockWatch.close();
    for (const w of this.vectorWatches) w.close();
    // Closing the socket is our disconnect: the server tells the others (docs/qemu.md §3).
    shutdownSocket(this.sock);
    closeFd(this.sock);
    this.reader.dispose();
    this.session.dispose();
    // Replaced in place by zero pages (mmap.ts), so stale views cannot fault.
    this.mapping.unmap();
    this.emit('close', { reason });
  }
}

