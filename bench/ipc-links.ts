// Transports for bench/ipc.ts, all behind one small interface so the same
// measuring loops (ipc-measure.ts) run over each. Every message starts with a
// type byte; COUNT replies carry a u32 at offset 1.
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { Worker, parentPort, type MessagePort } from 'node:worker_threads';
import { connect } from '../src/ivshmem/device.js';
import { Channel, Publisher, Subscriber, type Sample, type WaitMode } from '../src/channel/index.js';

export const PING = 1;
export const PONG = 2;
export const DATA = 3;
export const END = 4;
export const COUNT = 5;
export const CREDIT = 6;

/** What the measuring side sees of any transport. */
export interface BenchLink {
  /** Send; a promise means back-pressure: wait before sending more. */
  send(buf: Uint8Array): void | Promise<void>;
  /** Called for every message: type byte, length, and a reader for the COUNT field. */
  onMessage: (type: number, length: number, u32at1: () => number) => void;
  /** Replies expected for one END (pub-sub: one per subscriber). */
  readonly counters: number;
  close(): Promise<void>;
  /** Busy-poll transports only: do receive work now, synchronously (Channel.poll). */
  pollSync?: () => number;
}

/**
 * The loop of a busy-polling peer: poll without the event loop in between,
 * yielding one turn per millisecond so doorbells, state changes and the
 * parent's IPC still get through. Runs until the process ends.
 */
export async function spinLoop(poll: () => number): Promise<never> {
  for (;;) {
    const until = performance.now() + 1;
    while (performance.now() < until) for (let i = 0; i < 64; i++) poll();
    await new Promise((r) => setImmediate(r));
  }
}

const nop = () => {};

// ---------------------------------------------------------------- streams

/** Length-prefixed frames over a stream socket, without concatenating until a frame is complete. */
class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  constructor(private readonly onFrame: (f: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.have += chunk.length;
    for (;;) {
      if (this.have < 4) return;
      let head = this.chunks[0]!;
      if (head.length < 4) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const len = head.readUInt32LE(0);
      if (this.have < 4 + len) return;
      let frame: Buffer;
      if (head.length >= 4 + len) {
        frame = head.subarray(4, 4 + len);
        const rest = head.subarray(4 + len);
        this.chunks[0] = rest;
        if (!rest.length) this.chunks.shift();
      } else {
        const all = Buffer.concat(this.chunks);
        frame = all.subarray(4, 4 + len);
        const rest = all.subarray(4 + len);
        this.chunks = rest.length ? [rest] : [];
      }
      this.have -= 4 + len;
      this.onFrame(frame);
    }
  }
}

function writeFrame(sock: net.Socket, buf: Uint8Array): boolean {
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32LE(buf.byteLength, 0);
  sock.cork();
  sock.write(h);
  const ok = sock.write(buf);
  sock.uncork();
  return ok;
}

function socketLink(sock: net.Socket): BenchLink {
  sock.setNoDelay(true);
  const link: BenchLink = {
    onMessage: nop,
    counters: 1,
    send(buf) {
      if (writeFrame(sock, buf)) return;
      return new Promise<void>((r) => sock.once('drain', r));
    },
    close: async () => {
      sock.destroy();
    },
  };
  const fr = new FrameReader((f) => link.onMessage(f[0]!, f.length, () => f.readUInt32LE(1)));
  sock.on('data', (c) => fr.push(c));
  return link;
}

export function streamClient(path: string | { port: number }): Promise<BenchLink> {
  return new Promise((resolve, reject) => {
    const s = typeof path === 'string' ? net.connect(path) : net.connect(path.port, '127.0.0.1');
    s.once('connect', () => resolve(socketLink(s)));
    s.once('error', reject);
  });
}

/** Echo server side for UNIX/TCP sockets. */
export function streamServer(listen: string | { port: number }, onListening: () => void): void {
  const srv = net.createServer((sock) => {
    sock.setNoDelay(true);
    const link = socketLink(sock);
    echo(link);
  });
  if (typeof listen === 'string') srv.listen(listen, onListening);
  else srv.listen(listen.port, '127.0.0.1', onListening);
}

// ---------------------------------------------------------- the echo logic

/**
 * Pong side: answer PINGs (by default a PONG of the same length from one
 * reused buffer), count DATA, answer END with COUNT.
 */
export function echo(link: BenchLink, onPing: (length: number) => void = defaultPong(link)): void {
  let count = 0;
  link.onMessage = (type, length) => {
    if (type === PING) onPing(length);
    else if (type === DATA) count++;
    else if (type === END) {
      const b = Buffer.alloc(64);
      b[0] = COUNT;
      b.writeUInt32LE(count, 1);
      count = 0;
      void link.send(b);
    }
  };
}

function defaultPong(link: BenchLink): (length: number) => void {
  let buf = Buffer.alloc(0);
  return (length) => {
    if (buf.length !== length) buf = Buffer.alloc(length);
    buf[0] = PONG;
    void link.send(buf);
  };
}

// ------------------------------------------------- child_process IPC, workers

/** Windowed sender: at most `window` messages not yet confirmed (these transports have no back-pressure of their own). */
function windowed(post: (b: Uint8Array, done: () => void) => void, window: number): (b: Uint8Array) => void | Promise<void> {
  let outstanding = 0;
  let waiter: (() => void) | null = null;
  const done = () => {
    outstanding--;
    if (waiter && outstanding < window) {
      const w = waiter;
      waiter = null;
      w();
    }
  };
  return (b) => {
    outstanding++;
    post(b, done);
    if (outstanding >= window) return new Promise<void>((r) => (waiter = r));
  };
}

export function cpIpcClient(script: string, cfg: object): Promise<BenchLink> {
  const child: ChildProcess = fork(script, [JSON.stringify({ ...cfg, role: 'pong' })], { serialization: 'advanced', stdio: 'inherit' });
  return new Promise((resolve) => {
    const link: BenchLink = {
      onMessage: nop,
      counters: 1,
      // The send callback fires once the message is in the pipe: the kernel's back-pressure.
      send: windowed((b, done) => child.send(b, done), 64),
      close: async () => {
        child.kill();
      },
    };
    child.on('message', (m: unknown) => {
      if (m === 'ready') return resolve(link);
      const u = m as Uint8Array;
      link.onMessage(u[0]!, u.byteLength, () => Buffer.from(u.buffer, u.byteOffset, u.byteLength).readUInt32LE(1));
    });
  });
}

export function cpIpcServer(): void {
  const link: BenchLink = {
    onMessage: nop,
    counters: 1,
    send: windowed((b, done) => process.send!(b, done), 64),
    close: async () => {},
  };
  process.on('message', (m: unknown) => {
    const u = m as Uint8Array;
    link.onMessage(u[0]!, u.byteLength, () => 0);
  });
  echo(link);
  process.send!('ready');
}

/** Worker postMessage (copying). Credits: the worker returns one CREDIT per 32 DATA. */
export function workerClient(script: string, cfg: object): Promise<BenchLink> {
  const w = new Worker(script, { argv: [JSON.stringify({ ...cfg, role: 'pong' })] });
  let credit = 256;
  let waiter: (() => void) | null = null;
  return new Promise((resolve) => {
    const link: BenchLink = {
      onMessage: nop,
      counters: 1,
      send(b) {
        w.postMessage(b);
        if (b[0] === DATA && --credit <= 0) return new Promise<void>((r) => (waiter = r));
      },
      close: async () => {
        await w.terminate();
      },
    };
    w.on('message', (m: unknown) => {
      if (m === 'ready') return resolve(link);
      const u = m as Uint8Array;
      if (u[0] === CREDIT) {
        credit += 32;
        if (waiter && credit > 0) {
          const r = waiter;
          waiter = null;
          r();
        }
        return;
      }
      link.onMessage(u[0]!, u.byteLength, () => Buffer.from(u.buffer, u.byteOffset, u.byteLength).readUInt32LE(1));
    });
  });
}

export function workerServer(): void {
  const port = parentPort as MessagePort;
  let n = 0;
  const credit = new Uint8Array([CREDIT]);
  const link: BenchLink = {
    onMessage: nop,
    counters: 1,
    send: (b) => port.postMessage(b),
    close: async () => {},
  };
  const inner = (type: number, length: number) => {
    if (type === DATA && ++n % 32 === 0) port.postMessage(credit);
  };
  port.on('message', (u: Uint8Array) => {
    inner(u[0]!, u.byteLength);
    link.onMessage(u[0]!, u.byteLength, () => 0);
  });
  echo(link);
  port.postMessage('ready');
}

// ------------------------------------------------------------------- ivshm

/**
 * `setup` runs before the channel is up: the peer may send as soon as its own
 * side is attached, and a message that found no handler would be lost to the bench.
 */
export async function channelLink(socket: string, id: number, mode: WaitMode, setup: (l: BenchLink) => void = nop, spin = false): Promise<BenchLink> {
  const dev = await connect({ socket, id });
  const ch = new Channel(dev, { mode, spinMicros: process.env.IVSHM_SPIN ? Number(process.env.IVSHM_SPIN) : undefined });
  const link: BenchLink = {
    onMessage: nop,
    counters: 1,
    send(buf) {
      if (ch.trySend(buf)) return;
      return ch.send(buf).then(nop);
    },
    close: async () => {
      ch.close();
      dev.close();
    },
  };
  ch.on('message', (m) => link.onMessage(m.data[0]!, m.data.length, () => m.data.readUInt32LE(1)));
  // A bench that stalls must say why.
  ch.on('violation', (e) => console.error(`peer ${id}: ${e.message}`));
  ch.on('peer-down', (e) => console.error(`peer ${id}: peer-down ${e.reason}`));
  if (spin) link.pollSync = () => ch.poll();
  setup(link);
  await ch.ready();
  return link;
}

/**
 * Pub-sub: every peer publishes on its own section. Peer 0 (the measurer)
 * publishes PING/DATA; peers 1..n subscribe to it; peer 1 answers PINGs with
 * PONGs on its own publisher; every subscriber answers END with COUNT. Peer 0
 * subscribes to all of them.
 */
export async function pubsubLink(socket: string, id: number, peers: number, mode: WaitMode): Promise<BenchLink> {
  const dev = await connect({ socket, id });
  const pub = new Publisher(dev, { overflow: 'block', mode });
  const send = (buf: Uint8Array): void | Promise<void> => {
    if (pub.tryPublish(buf)) return;
    return pub.publish(buf).then(nop);
  };
  const subs: Subscriber[] = [];
  const link: BenchLink = {
    onMessage: nop,
    counters: id === 0 ? peers - 1 : 1,
    send,
    close: async () => {
      for (const s of subs) s.close();
      pub.close();
      dev.close();
    },
  };
  let current: Sample | null = null;
  const sources = id === 0 ? Array.from({ length: peers - 1 }, (_, k) => k + 1) : [0];
  for (const p of sources) {
    const s = new Subscriber(dev, { publisher: p, mode });
    // Read in place: only the type byte (and the COUNT field) are touched.
    s.on('sample', (x) => {
      current = x;
      link.onMessage(x.readUInt8(0), x.byteLength, () => x.readUInt32LE(1));
      current = null;
    });
    subs.push(s);
  }
  // The handlers are in place before we wait: the measurer may ping as soon as it sees us.
  if (id !== 0) {
    // Pong: copy the ping's bytes into a loan of our ring (one copy, read in
    // place); only peer 1 answers, every subscriber counts.
    echo(link, (length) => {
      if (id !== 1) return;
      const l = pub.loan(length);
      if (l && current) {
        current.copyTo(l.buffer);
        l.buffer[0] = PONG;
        l.commit();
      } else void send(Buffer.alloc(length, PONG));
    });
  }
  await Promise.all(subs.map((s) => s.ready()));
  const want = id === 0 ? peers - 1 : 0;
  while (pub.subscribers().length < want) await new Promise((r) => setTimeout(r, 5));
  return link;
}
