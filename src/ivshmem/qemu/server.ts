// A server for QEMU's ivshmem protocol v0 (docs/qemu.md), so
// `-device ivshmem-doorbell,chardev=X,vectors=N` virtual machines, QEMU's
// ivshmem-client and our own client (client.ts) can be peers of one another.
//
// There is no isolation in this mode: every peer gets the same read-write
// shared memory fd (docs/qemu.md §2), and every peer gets every other peer's
// doorbell eventfds. That is the v1 design; native ivshm links (broker.ts)
// are the isolated alternative.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { BusyError, InvalidArgumentError } from '../../errors.js';
import {
  addSeals,
  closeFd,
  E,
  errnoName,
  eventfdCreate,
  memfdCreate,
  peerCredentials,
  receiveMessage,
  SEAL,
  unixAccept,
  unixListen,
  watchReadable,
  type Watch,
} from '../../sys/index.js';
import { watchDuplex, type DuplexWatch } from '../../sys/fd-watch.js';
import { dupFd, shmCreate, shmPath } from '../../sys/posix-shm.js';
import { parseInteger, parseSize } from '../../units.js';
import { IVSHMEM_MAX_ID, IVSHMEM_MAX_VECTORS, IVSHMEM_PROTOCOL_VERSION, IVSHMEM_SHM_MSG, sendQemuMessage } from './protocol.js';

export const QEMU_DEFAULT_SIZE = 4 * 1024 * 1024; // as QEMU's contrib server (docs/qemu.md §8)
export const QEMU_MIN_SIZE = 4096; // QEMU maps BAR2: page-aligned (docs/qemu.md §7)
export const QEMU_MAX_SIZE = 2 ** 36;
/** Messages queued for a client that does not read before it is dropped. */
const MAX_QUEUED = 65536;

/** Socket, size and vectors of a QEMU ivshmem v1 server. */
export interface QemuServerOptions {
  socket: string;
  /** Shared memory bytes (number or "4M"); rounded up to a power of two (docs/qemu.md §7). Default 4 MiB. */
  size?: number | string;
  /** Vectors per peer, 1..64; must equal the `vectors=` of every QEMU device. Default 1. */
  vectors?: number | string;
  /** Keep the memory in /dev/shm/NAME (unlinked on stop) instead of an anonymous memfd. */
  shm?: string;
  /** One line per event (connects, disconnects with reason); default: silent. */
  log?: (line: string) => void;
}

export interface QemuServerEvents {
  'peer-joined': [{ peer: number; pid: number | null }];
  'peer-gone': [{ peer: number; reason: string }];
  close: [];
}

/** Round up to a power of two, at least one page (docs/qemu.md §7: QEMU aborts on any other size). */
export function qemuShmSize(requested: number): number {
  let size = QEMU_MIN_SIZE;
  while (size < requested) size *= 2;
  return size;
}

interface Queued {
  value: number;
  /** A dup owned by the queue entry, or -1. */
  fd: number;
}

interface Client {
  readonly id: number;
  readonly sock: number;
  /** Eventfds of vectors 0..N-1: read by this peer, written by the others (docs/qemu.md §5). */
  readonly vectors: number[];
  readonly pid: number | null;
  /** Input (= disconnect) always; writability while `queue` is not empty. One handle per fd (fd-watch.ts). */
  readonly watch: DuplexWatch;
  /** Messages that met a full socket buffer, sent when it drains. */
  queue: Queued[];
  /** Peers whose vectors this client was sent: only they get a disconnect notice (QEMU calls others "invalid peer"). */
  readonly known: Set<number>;
}

/** A QEMU ivshmem v1 server (the `ivshmem-server` protocol): one shared read-write file for all peers, so no isolation (docs/qemu.md). */
export class QemuServer extends EventEmitter<QemuServerEvents> {
  readonly socketPath: string;
  readonly size: number;
  readonly vectors: number;
  /** /dev/shm path with --shm, else null (memfd). */
  readonly shmPath: string | null;
  private readonly shmName: string | undefined;
  private readonly log: (line: string) => void;
  private listenFd = -1;
  private listenWatch: Watch | null = null;
  private shmFd = -1;
  /** Insertion order = join order, which docs/qemu.md §2 step 4 follows. */
  private readonly clients = new Map<number, Client>();
  /** Next ID to try: monotonic, wraps at 65536 (docs/qemu.md §4). */
  private curId = 0;
  private state: 'new' | 'running' | 'stopped' = 'new';

  constructor(opts: QemuServerOptions) {
    super();
    if (!opts.socket) throw new InvalidArgumentError('socket: a QEMU ivshmem server needs a socket path');
    this.socketPath = opts.socket;
    const requested = parseSize(opts.size ?? QEMU_DEFAULT_SIZE, 'size');
    if (requested > QEMU_MAX_SIZE) throw new InvalidArgumentError(`size: ${requested} bytes is above the largest QEMU region, ${QEMU_MAX_SIZE} bytes`);
    this.size = qemuShmSize(Math.max(requested, 1));
    this.vectors = parseInteger(opts.vectors ?? 1, 1, IVSHMEM_MAX_VECTORS, 'vectors');
    this.shmPath = opts.shm !== undefined ? shmPath(opts.shm) : null;
    this.shmName = opts.shm;
    this.log = opts.log ?? (() => {});
  }

  /** Create the memory, listen. Resolves when clients can connect. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new BusyError(`QEMU ivshmem server on ${this.socketPath} was already started`);
    if (this.shmName !== undefined) {
      this.shmFd = shmCreate(this.shmName, this.size).fd;
    } else {
      this.shmFd = memfdCreate('ivshm:qemu:shm', this.size);
      // Nobody may resize the memory under a mapping (SIGBUS); QEMU only maps it.
      addSeals(this.shmFd, SEAL.SHRINK | SEAL.GROW | SEAL.SEAL);
    }
    try {
      this.listenFd = unixListen(this.socketPath, 'stream');
    } catch (err) {
      this.releaseShm();
      throw err;
    }
    this.listenWatch = watchReadable(this.listenFd, () => this.acceptAll());
    this.state = 'running';
    this.log(`listening on ${this.socketPath}: ${this.size} bytes of shared memory (${this.shmPath ?? 'memfd ivshm:qemu:shm'}), ${this.vectors} vector(s) per peer, protocol version ${IVSHMEM_PROTOCOL_VERSION}`);
  }

  /** IDs of connected peers, in join order. */
  peers(): number[] {
    return [...this.clients.keys()];
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /**
   * Disconnect every peer in join order (each remaining peer is told, as the
   * contrib server does on SIGTERM, docs/qemu.md §6), remove the socket path
   * and the /dev/shm object.
   */
  async stop(): Promise<void> {
    if (this.state !== 'running') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopped';
    this.listenWatch?.close();
    this.listenWatch = null;
    closeFd(this.listenFd);
    this.listenFd = -1;
    for (const id of [...this.clients.keys()]) this.drop(id, 'server stopping');
    fs.rmSync(this.socketPath, { force: true });
    this.releaseShm();
    this.log('stopped');
    this.emit('close');
  }

  private releaseShm(): void {
    closeFd(this.shmFd);
    this.shmFd = -1;
    if (this.shmPath) fs.rmSync(this.shmPath, { force: true });
  }

  private acceptAll(): void {
    for (;;) {
      if (this.state !== 'running') return;
      const sock = unixAccept(this.listenFd);
      if (sock === -1) return;
      if (sock === -2) {
        // Out of fds: stop accepting for a moment instead of spinning.
        this.log('accept: out of file descriptors; pausing accepts for 100 ms');
        this.listenWatch?.close();
        this.listenWatch = null;
        setTimeout(() => {
          if (this.state === 'running' && !this.listenWatch) this.listenWatch = watchReadable(this.listenFd, () => this.acceptAll());
        }, 100).unref();
        return;
      }
      try {
        this.admit(sock);
      } catch (err) {
        closeFd(sock);
        this.log(`refused a client: ${(err as Error).message}`);
      }
    }
  }

  private nextId(): number {
    for (let tries = 0; tries <= IVSHMEM_MAX_ID; tries++) {
      const id = this.curId;
      this.curId = (this.curId + 1) & IVSHMEM_MAX_ID;
      if (!this.clients.has(id)) return id;
    }
    return -1;
  }

  private admit(sock: number): void {
    const id = this.nextId();
    if (id < 0) throw new BusyError('all 65536 peer IDs are in use');
    const vectors: number[] = [];
    try {
      for (let v = 0; v < this.vectors; v++) vectors.push(eventfdCreate());
    } catch (err) {
      vectors.forEach(closeFd);
      throw err;
    }
    const cred = peerCredentials(sock);
    // Any readability (bytes or EOF) is the client's disconnect (docs/qemu.md §1).
    const watch = watchDuplex(
      sock,
      (hangup) => this.onClientInput(id, hangup),
      () => this.flush(id),
    );
    const client: Client = { id, sock, vectors, pid: cred?.pid ?? null, watch, queue: [], known: new Set() };
    this.clients.set(id, client);
    this.log(`peer ${id} connected${cred ? ` (pid ${cred.pid}, uid ${cred.uid})` : ''}`);

    // docs/qemu.md §2: version, ID, shm; then the new peer's vectors to the others,
    // the others' vectors to it (join order), and its own vectors last.
    if (!this.send(client, IVSHMEM_PROTOCOL_VERSION)) return;
    if (!this.send(client, id)) return;
    if (!this.send(client, IVSHMEM_SHM_MSG, this.shmFd)) return;
    for (const other of [...this.clients.values()]) if (other !== client) this.announce(other, client);
    for (const other of [...this.clients.values()]) if (other !== client && !this.announce(client, other)) return;
    if (!this.announce(client, client)) return;
    this.emit('peer-joined', { peer: id, pid: client.pid });
  }

  /** Send `peer`'s vector eventfds to `to`, one message each (vector = order). False if `to` was dropped. */
  private announce(to: Client, peer: Client): boolean {
    if (!this.clients.has(to.id) || !this.clients.has(peer.id)) return this.clients.has(to.id);
    to.known.add(peer.id);
    for (const fd of peer.vectors) if (!this.send(to, peer.id, fd)) return false;
    return true;
  }

  private onClientInput(id: number, hangup: boolean): void {
    const client = this.clients.get(id);
    if (!client) return;
    // Read once, only to name the reason in the log; fds a client may have
    // sent are closed, not kept.
    const r = receiveMessage(client.sock, 64);
    let reason: string;
    if (r.kind === 'message') {
      r.fds.forEach(closeFd);
      reason = `sent ${r.data.length} byte(s)${r.fds.length ? ` and ${r.fds.length} fd(s)` : ''}; clients of this protocol never send`;
    } else if (r.kind === 'eof') reason = 'EOF';
    else if (r.kind === 'error') reason = `socket error ${errnoName(r.errno)}`;
    else if (hangup) reason = 'hangup';
    else return; // spurious wakeup
    this.drop(id, reason);
  }

  /** Send, or queue behind a full socket buffer. Returns false if the client was dropped. */
  private send(client: Client, value: number, fd = -1): boolean {
    if (!this.clients.has(client.id)) return false;
    if (client.queue.length === 0) {
      const e = sendQemuMessage(client.sock, value, fd);
      if (e === 0) return true;
      if (e !== E.EAGAIN) {
        this.drop(client.id, `send failed: ${errnoName(e)}`);
        return false;
      }
    }
    if (client.queue.length >= MAX_QUEUED) {
      this.drop(client.id, `not reading: ${MAX_QUEUED} messages queued`);
      return false;
    }
    // The queue owns a dup, so a peer leaving (closing its eventfds) cannot
    // make a queued message carry a closed or reused fd number.
    client.queue.push({ value, fd: fd >= 0 ? dupFd(fd) : -1 });
    client.watch.setWritable(true);
    return true;
  }

  private flush(id: number): void {
    const client = this.clients.get(id);
    if (!client) return;
    while (client.queue.length) {
      const m = client.queue[0]!;
      const e = sendQemuMessage(client.sock, m.value, m.fd);
      if (e === E.EAGAIN) return;
      if (e !== 0) {
        this.drop(id, `send failed: ${errnoName(e)}`);
        return;
      }
      client.queue.shift();
      closeFd(m.fd);
    }
    client.watch.setWritable(false);
  }

  private drop(id: number, reason: string): void {
    const client = this.clients.get(id);
    if (!client) return;
    this.clients.delete(id);
    client.watch.close();
    for (const m of client.queue) closeFd(m.fd);
    client.queue = [];
    closeFd(client.sock);
    client.vectors.forEach(closeFd);
    this.log(`peer ${id} left: ${reason}`);
    // Disconnect notification: the ID without an fd (docs/qemu.md §3).
    for (const other of [...this.clients.values()]) if (other.known.delete(id)) this.send(other, id);
    this.emit('peer-gone', { peer: id, reason });
  }
}
