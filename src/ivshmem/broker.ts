// The broker: the hypervisor's part for one ivshmem 2.0 link (docs/spec.md,
// "1. ivshmem 2.0 link" and "2. Broker control protocol, version 1").
//
// It owns one memfd per section, gives each peer read-write fds only for the
// R/W section and its own output section, seals everything so no peer can
// write or resize memory another peer reads, writes the State Table on the
// peers' behalf, and creates one eventfd per (sender, receiver, vector)
// doorbell. It relays nothing on the data path: after a peer has joined, the
// broker only sees STATE requests and the socket's end.
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import path from 'node:path';
import { IvshmError, ProtocolError } from '../errors.js';
import {
  addSeals,
  closeFd,
  eventfdCreate,
  eventfdSignal,
  mapShared,
  memfdCreate,
  peerCredentials,
  readOnlyFd,
  receiveMessage,
  SEAL,
  sendMessage,
  unixAccept,
  unixListen,
  socketFileId,
  unlinkSocketFile,
  watchReadable,
  errnoName,
  type FileId,
  type Mapping,
  type Watch,
} from '../sys/index.js';
import {
  CONTROL_VERSION,
  decodeMessage,
  encodeInit,
  encodePeerGone,
  encodePeerJoined,
  encodeRefused,
  encodeSynced,
  GONE,
  goneReasonText,
  MSG,
  REFUSE,
  type Hello,
} from './control-protocol.js';
import { memfdName } from './layout.js';
import { resolveLinkParams, type LinkParams, type LinkParamsInput } from './params.js';

/** The link's parameters (the name defaults to the socket's base name) and how the broker serves it. */
export interface BrokerOptions extends LinkParamsInput {
  socket: string;
  /**
   * When set, a peer must ask for one of these IDs and present its token, so
   * a supervisor can give each cell exactly one place on the link.
   */
  tokens?: Record<number, string>;
  /** A connection must say HELLO within this time (ms). */
  helloTimeoutMs?: number;
  /** A joining peer must confirm its mapping within this time (ms). */
  mapTimeoutMs?: number;
  /** Connections that have not finished joining, at most (flood guard). */
  maxPending?: number;
}

/** A log line of the broker, for the `log` event. */
export interface BrokerLog {
  level: 'info' | 'warn';
  message: string;
}

/** What the broker knows about one joined peer (for status displays). */
export interface BrokerPeerStatus {
  id: number;
  pid: number | null;
  state: number;
  joinedAt: number;
  stateWrites: number;
}

export interface BrokerEvents {
  log: [BrokerLog];
  'peer-joined': [{ id: number; pid: number | null }];
  'peer-left': [{ id: number; reason: string }];
  listening: [];
  stopped: [];
}

type Phase = 'hello' | 'mapping' | 'active';

interface Client {
  fd: number;
  watch: Watch;
  pid: number | null;
  phase: Phase;
  id: number;
  /** Own output section: RW fd until the owner has mapped, then only a read-only fd is kept. */
  outFd: number;
  outRoFd: number;
  /** Broker -> peer doorbell for state-change interrupts (vector 0). */
  stateBell: number;
  timer: NodeJS.Timeout | null;
  joinedAt: number;
  stateWrites: number;
}

interface LinkMemory {
  stateFd: number;
  stateRoFd: number;
  stateMap: Mapping;
  table: Uint32Array;
  rwFd: number;
}

/** A link name from the socket path: "/run/ivshm/net0.sock" -> "net0". */
export function defaultLinkName(socket: string): string {
  const base = path.basename(socket).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._-]+/, '');
  return base.slice(0, 64) || 'link';
}

const EAGAIN = constants.errno.EAGAIN;

/** Messages handled per readiness callback, so a flooding peer cannot starve the others. */
const BATCH = 64;

/** The hypervisor role of one ivshmem 2.0 link: owns its sections (one sealed memfd each), admits peers over a UNIX control socket and hands each exactly the access it is granted (docs/spec.md §1, §2). */
export class Broker extends EventEmitter<BrokerEvents> {
  readonly params: LinkParams;
  readonly socketPath: string;
  private readonly opts: BrokerOptions;
  private listenFd = -1;
  private socketId: FileId | null = null;
  private listenWatch: Watch | null = null;
  private readonly clients = new Set<Client>();
  private readonly byId = new Map<number, Client>();
  private memory: LinkMemory | null = null;
  private stopping = false;
  private acceptPause: NodeJS.Timeout | null = null;
  readonly counters = { joins: 0, leaves: 0, refused: 0, violations: 0, stateWrites: 0, stateInterrupts: 0 };

  constructor(opts: BrokerOptions) {
    super();
    this.opts = opts;
    this.params = resolveLinkParams({ ...opts, name: opts.name ?? defaultLinkName(opts.socket) });
    this.socketPath = opts.socket;
  }

  private log(level: BrokerLog['level'], message: string): void {
    this.emit('log', { level, message: `link ${this.params.name}: ${message}` });
  }

  /** Bind the socket and start serving. */
  async start(): Promise<void> {
    this.listenFd = unixListen(this.socketPath, 'seqpacket');
    this.socketId = socketFileId(this.socketPath);
    this.listenWatch = watchReadable(this.listenFd, () => this.acceptAll());
    const p = this.params;
    this.log(
      'info',
      `listening on ${this.socketPath}: ${p.peers} peers, ${p.vectors} vector(s), protocol 0x${p.protocol.toString(16).padStart(4, '0')}, ` +
        `state ${p.stateSize} B, rw ${p.rwSize} B, output ${p.outputSize} B per peer`,
    );
    this.emit('listening');
  }

  /** Disconnect every peer, remove the socket, release all memory. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.acceptPause) clearTimeout(this.acceptPause);
    this.listenWatch?.close();
    closeFd(this.listenFd);
    this.listenFd = -1;
    // Only the socket file this broker made (not one that replaced it).
    if (this.socketId) unlinkSocketFile(this.socketPath, this.socketId);
    for (const c of [...this.clients]) this.drop(c, 'broker stopping', GONE.BROKER_STOPPING, false);
    this.log('info', 'stopped');
    this.emit('stopped');
  }

  status(): { name: string; socket: string; params: LinkParams; peers: BrokerPeerStatus[]; counters: Broker['counters'] } {
    const peers = [...this.byId.values()]
      .filter((c) => c.phase === 'active')
      .map((c) => ({ id: c.id, pid: c.pid, state: this.memory?.table[c.id] ?? 0, joinedAt: c.joinedAt, stateWrites: c.stateWrites }))
      .sort((a, b) => a.id - b.id);
    return { name: this.params.name, socket: this.socketPath, params: this.params, peers, counters: { ...this.counters } };
  }

  // ---- connections ----

  private acceptAll(): void {
    for (let i = 0; i < BATCH; i++) {
      const fd = unixAccept(this.listenFd);
      if (fd === -1) return;
      if (fd === -2) {
        // Out of fds: stop polling the listener for a moment instead of spinning.
        this.log('warn', 'out of file descriptors; pausing accept for 200 ms (raise ulimit -n?)');
        this.listenWatch?.close();
        this.acceptPause = setTimeout(() => {
          this.acceptPause = null;
          if (!this.stopping) this.listenWatch = watchReadable(this.listenFd, () => this.acceptAll());
        }, 200);
        return;
      }
      this.onConnection(fd);
    }
  }

  private onConnection(fd: number): void {
    const pending = [...this.clients].filter((c) => c.phase !== 'active').length;
    const cred = peerCredentials(fd);
    if (pending >= (this.opts.maxPending ?? 32)) {
      this.counters.refused++;
      this.log('warn', `refused a connection from pid ${cred?.pid ?? '?'}: too many connections still joining`);
      sendMessage(fd, encodeRefused(REFUSE.LINK_FULL, 'too many connections are joining at once; retry later'));
      closeFd(fd);
      return;
    }
    const client: Client = {
      fd,
      watch: null as unknown as Watch,
      pid: cred?.pid ?? null,
      phase: 'hello',
      id: -1,
      outFd: -1,
      outRoFd: -1,
      stateBell: -1,
      timer: null,
      joinedAt: 0,
      stateWrites: 0,
    };
    client.watch = watchReadable(fd, () => this.onReadable(client));
    client.timer = setTimeout(() => this.drop(client, 'sent no HELLO in time', GONE.TIMEOUT), this.opts.helloTimeoutMs ?? 5000);
    this.clients.add(client);
  }

  private onReadable(client: Client): void {
    for (let i = 0; i < BATCH && this.clients.has(client); i++) {
      const r = receiveMessage(client.fd);
      if (r.kind === 'again') return;
      if (r.kind === 'eof') return this.drop(client, 'closed its connection', GONE.LEFT);
      if (r.kind === 'error') return this.drop(client, `socket error ${errnoName(r.errno)}`, GONE.LEFT);
      // A peer never sends fds; close any it smuggles in so they cannot pile up here.
      for (const f of r.fds) closeFd(f);
      try {
        if (r.truncated) throw new ProtocolError('message longer than 64 KiB');
        if (r.fds.length) throw new ProtocolError(`message carried ${r.fds.length} file descriptor(s); peers send none`);
        this.handle(client, r.data);
      } catch (err) {
        if (!(err instanceof IvshmError)) throw err;
        this.counters.violations++;
        return this.drop(client, err.message, GONE.PROTOCOL_VIOLATION);
      }
    }
  }

  private who(c: Client): string {
    return `${c.id >= 0 ? `peer ${c.id}` : 'connection'} (pid ${c.pid ?? '?'})`;
  }

  private handle(client: Client, packet: Buffer): void {
    const m = decodeMessage(packet);
    switch (client.phase) {
      case 'hello':
        if (m.type !== MSG.HELLO) throw new ProtocolError(`expected HELLO, got message type 0x${m.type.toString(16)}`);
        return this.onHello(client, m.hello);
      case 'mapping':
        if (m.type !== MSG.MAPPED) throw new ProtocolError(`expected MAPPED, got message type 0x${m.type.toString(16)}`);
        return this.onMapped(client);
      case 'active':
        if (m.type !== MSG.SET_STATE) throw new ProtocolError(`unexpected message type 0x${m.type.toString(16)} after joining`);
        return this.onSetState(client, m.value);
    }
  }

  private refuse(client: Client, code: number, text: string): void {
    this.counters.refused++;
    this.log('warn', `refused ${this.who(client)}: ${text}`);
    sendMessage(client.fd, encodeRefused(code, text));
    this.drop(client, null, GONE.LEFT);
  }

  // Requested or lowest free ID; duplicates, out-of-range IDs and the
  // (N+1)-th peer are refused (docs/spec.md, "2. Broker control protocol").
  private onHello(client: Client, hello: Hello): void {
    const N = this.params.peers;
    if (hello.version !== CONTROL_VERSION) {
      return this.refuse(client, REFUSE.BAD_VERSION, `control protocol version ${hello.version} is not supported; this broker speaks version ${CONTROL_VERSION}`);
    }
    let id = hello.id;
    const tokens = this.opts.tokens;
    if (tokens) {
      if (id < 0 || tokens[id] === undefined || tokens[id] !== hello.token) {
        return this.refuse(client, REFUSE.NOT_ALLOWED, `peer ID ${id} with this token is not allowed on link ${this.params.name}`);
      }
    }
    if (id === -1) {
      id = -1;
      for (let k = 0; k < N; k++) if (!this.byId.has(k)) {
        id = k;
        break;
      }
      if (id === -1) return this.refuse(client, REFUSE.LINK_FULL, `link ${this.params.name} is full: all ${N} peer IDs are taken`);
    } else if (id < 0 || id >= N) {
      return this.refuse(client, REFUSE.ID_OUT_OF_RANGE, `peer ID ${id} is out of range 0..${N - 1} on link ${this.params.name}`);
    } else if (this.byId.has(id)) {
      return this.refuse(client, REFUSE.ID_TAKEN, `peer ID ${id} is already taken on link ${this.params.name}`);
    }

    const mem = this.ensureMemory();
    const p = this.params;
    // A fresh output section per join: a restarted peer starts from zeroes.
    const outFd = memfdCreate(memfdName(p.name, `out${id}`), Math.max(p.outputSize, 0));
    addSeals(outFd, SEAL.SHRINK | SEAL.GROW);
    const stateBell = eventfdCreate();
    const selfBells = Array.from({ length: p.vectors }, () => eventfdCreate());
    client.id = id;
    client.outFd = outFd;
    client.stateBell = stateBell;
    client.phase = 'mapping';
    this.byId.set(id, client);
    const fds = [mem.stateRoFd, outFd, stateBell, ...selfBells, ...(mem.rwFd >= 0 ? [mem.rwFd] : [])];
    const err = sendMessage(
      client.fd,
      encodeInit({ version: CONTROL_VERSION, id, ...p }),
      fds,
    );
    // The peer has its own copies now; self doorbells need no broker copy.
    for (const f of selfBells) closeFd(f);
    if (err) return this.sendFailed(client, err);
    if (client.timer) clearTimeout(client.timer);
    client.timer = setTimeout(() => this.drop(client, 'did not confirm its mapping in time', GONE.TIMEOUT), this.opts.mapTimeoutMs ?? 10000);
  }

  private onMapped(client: Client): void {
    if (client.timer) clearTimeout(client.timer);
    client.timer = null;
    // The owner has its writable mapping; from now on no new writable
    // mapping, write() or mprotect to writable is possible by anyone, even
    // through /proc/self/fd reopening (docs/spec.md, "1.1 Sections").
    addSeals(client.outFd, SEAL.FUTURE_WRITE | SEAL.SEAL);
    client.outRoFd = readOnlyFd(client.outFd);
    closeFd(client.outFd);
    client.outFd = -1;
    client.phase = 'active';
    client.joinedAt = Date.now();
    this.counters.joins++;

    const V = this.params.vectors;
    for (const other of this.byId.values()) {
      if (other === client || other.phase !== 'active') continue;
      // One eventfd per (sender, receiver, vector): a peer can neither forge
      // another sender's doorbells nor swallow those sent to a third peer.
      const toOther = Array.from({ length: V }, () => eventfdCreate());
      const fromOther = Array.from({ length: V }, () => eventfdCreate());
      const e1 = sendMessage(other.fd, encodePeerJoined(client.id), [client.outRoFd, ...fromOther, ...toOther]);
      const e2 = sendMessage(client.fd, encodePeerJoined(other.id), [other.outRoFd, ...toOther, ...fromOther]);
      for (const f of [...toOther, ...fromOther]) closeFd(f);
      if (e1) this.sendFailed(other, e1);
      if (e2) return this.sendFailed(client, e2);
    }
    const e = sendMessage(client.fd, encodeSynced());
    if (e) return this.sendFailed(client, e);
    const active = [...this.byId.values()].filter((c) => c.phase === 'active').length;
    this.log('info', `peer ${client.id} joined (pid ${client.pid ?? '?'}), ${active} of ${this.params.peers} peers`);
    this.emit('peer-joined', { id: client.id, pid: client.pid });
  }

  // docs/spec.md §1.2: the table is always written; vector 0 goes to every other peer
  // only when the value changed.
  private onSetState(client: Client, value: number): void {
    const mem = this.memory!;
    client.stateWrites++;
    this.counters.stateWrites++;
    const was = mem.table[client.id]!;
    mem.table[client.id] = value;
    if (was !== value) this.ringStateChange(client.id);
  }

  private ringStateChange(except: number): void {
    for (const other of this.byId.values()) {
      if (other.id === except || other.phase !== 'active') continue;
      this.counters.stateInterrupts++;
      eventfdSignal(other.stateBell);
    }
  }

  /**
   * A send to a peer failed: a peer that died is gone; one whose socket is
   * full is not reading its control messages and is thrown out.
   */
  private sendFailed(client: Client, e: number): void {
    if (e === EAGAIN) this.drop(client, 'its control socket is full (it does not read its messages)', GONE.PROTOCOL_VIOLATION);
    else this.drop(client, `connection lost (${errnoName(e)})`, GONE.LEFT);
  }

  /**
   * Remove a connection. For a joined peer (docs/spec.md §1.2): its entry becomes 0,
   * the others get PEER_GONE and, if the entry was non-zero, vector 0.
   */
  private drop(client: Client, reason: string | null, code: number, log = true): void {
    if (!this.clients.delete(client)) return;
    if (client.timer) clearTimeout(client.timer);
    client.watch.close();
    closeFd(client.fd);
    const wasActive = client.phase === 'active';
    if (client.id >= 0 && this.byId.get(client.id) === client) {
      this.byId.delete(client.id);
      if (wasActive && this.memory) {
        const was = this.memory.table[client.id]!;
        this.memory.table[client.id] = 0;
        for (const other of [...this.byId.values()]) {
          if (other.phase !== 'active') continue;
          const e = sendMessage(other.fd, encodePeerGone(client.id, code));
          if (was !== 0) {
            this.counters.stateInterrupts++;
            eventfdSignal(other.stateBell);
          }
          if (e && !this.stopping) this.sendFailed(other, e);
        }
      }
    }
    closeFd(client.outFd);
    closeFd(client.outRoFd);
    closeFd(client.stateBell);
    if (wasActive) {
      this.counters.leaves++;
      if (log && reason) this.log(code === GONE.LEFT ? 'info' : 'warn', `peer ${client.id} ${code === GONE.LEFT ? 'left' : goneReasonText(code)}: ${reason}`);
      this.emit('peer-left', { id: client.id, reason: reason ?? goneReasonText(code) });
    } else if (log && reason) {
      this.log('warn', `dropped ${this.who(client)}: ${code === GONE.PROTOCOL_VIOLATION ? 'protocol violation: ' : ''}${reason}`);
    }
    if (this.byId.size === 0) this.releaseMemory();
  }

  // ---- link memory ----

  // docs/spec.md §1.1: the State Table is zeroed when the first peer arrives,
  // so a fresh memfd per link lifetime, released with the last peer.
  private ensureMemory(): LinkMemory {
    if (this.memory) return this.memory;
    const p = this.params;
    const stateFd = memfdCreate(memfdName(p.name, 'state'), p.stateSize);
    const stateMap = mapShared(stateFd, p.stateSize, true, memfdName(p.name, 'state'));
    // The broker keeps the only writable mapping of the table.
    addSeals(stateFd, SEAL.SHRINK | SEAL.GROW | SEAL.FUTURE_WRITE | SEAL.SEAL);
    const stateRoFd = readOnlyFd(stateFd);
    let rwFd = -1;
    if (p.rwSize > 0) {
      rwFd = memfdCreate(memfdName(p.name, 'rw'), p.rwSize);
      addSeals(rwFd, SEAL.SHRINK | SEAL.GROW | SEAL.SEAL);
    }
    this.memory = { stateFd, stateRoFd, stateMap, table: new Uint32Array(stateMap.buffer, 0, p.peers), rwFd };
    return this.memory;
  }

  private releaseMemory(): void {
    const m = this.memory;
    if (!m) return;
    this.memory = null;
    m.stateMap.unmap();
    closeFd(m.stateFd);
    closeFd(m.stateRoFd);
    closeFd(m.rwFd);
  }
}
